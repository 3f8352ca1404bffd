DROP INDEX IF EXISTS jobs_cancel_idx;
ALTER TABLE jobs DROP COLUMN IF EXISTS cancel_sent_at;
ALTER TABLE jobs DROP COLUMN IF EXISTS cancel_requested_at;
