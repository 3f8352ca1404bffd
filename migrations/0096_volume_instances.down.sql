ALTER TABLE usage_samples DROP COLUMN volume_bytes;
DROP TABLE volume_instances;
ALTER TABLE volumes DROP COLUMN former_app_id, DROP COLUMN per_instance;
