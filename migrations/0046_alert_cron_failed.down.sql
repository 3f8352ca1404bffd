DROP INDEX cron_runs_app_idx;
DELETE FROM alert_rules WHERE kind = 'cron_failed';
ALTER TABLE alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE alert_rules ADD CONSTRAINT alert_rules_kind_check
    CHECK (kind IN ('cpu', 'memory', 'network', 'disk', 'offline', 'crashloop', 'deployment_failed'));
