-- Cancelling a job that a worker holds is a request: the worker is told
-- (job.cancel, resent until the job ends) and its result ends the job.
ALTER TABLE jobs ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE jobs ADD COLUMN cancel_sent_at timestamptz;
CREATE INDEX jobs_cancel_idx ON jobs (worker_id) WHERE cancel_requested_at IS NOT NULL AND state IN ('assigned', 'running');
