DROP INDEX IF EXISTS jobs_undelivered_idx;
ALTER TABLE jobs DROP COLUMN IF EXISTS sent_at;
