ALTER TABLE apps DROP COLUMN root_dir, DROP COLUMN dockerfile;
