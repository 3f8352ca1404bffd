-- An alert rule can watch an app's scheduled jobs: it fires while the
-- newest finished run failed.
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('cpu', 'memory', 'network', 'disk', 'offline', 'crashloop', 'deployment_failed', 'cron_failed'));
CREATE INDEX cron_runs_app_idx ON cron_runs (app_id, id DESC) WHERE state IN ('succeeded', 'failed');
