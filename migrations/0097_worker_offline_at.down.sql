ALTER TABLE workers DROP COLUMN offline_at;
