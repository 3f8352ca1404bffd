ALTER TABLE apps DROP COLUMN max_surge, DROP COLUMN max_unavailable, DROP COLUMN unhealthy_since;
DROP TABLE app_instances;
