-- An app being deleted: out of routing and refusing deploys while its
-- worker removes its containers; the row goes when that job succeeds.
ALTER TABLE apps ADD COLUMN deleting_at timestamptz;
