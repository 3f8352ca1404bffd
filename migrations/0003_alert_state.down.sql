ALTER TABLE alert_rules DROP COLUMN IF EXISTS clear_since;
