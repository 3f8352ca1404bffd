-- Hysteresis of alert rules: when the condition last became false, so an
-- alert resolves only after staying clear for a while.
ALTER TABLE alert_rules ADD COLUMN clear_since timestamptz;
