DROP TABLE cron_runs;
DROP TABLE cron_jobs;
ALTER TABLE jobs DROP COLUMN pin_worker_id;
DROP TABLE volumes;
