-- When a job was last sent to its worker (delivery is at-least-once: resent
-- until acknowledged).
ALTER TABLE jobs ADD COLUMN sent_at timestamptz;
-- Delivery: assigned, unacknowledged jobs of one worker.
CREATE INDEX jobs_undelivered_idx ON jobs (worker_id, id) WHERE state = 'assigned';
