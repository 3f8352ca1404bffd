-- offline_at: when the worker was last declared offline (missed
-- heartbeats). Its instances start on other workers once it has stayed
-- offline for the grace period, counted from here: a control plane that
-- was down itself does not take its workers' stale heartbeats for a loss.
ALTER TABLE workers ADD COLUMN offline_at timestamptz;
