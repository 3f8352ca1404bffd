ALTER TABLE certmagic_locks DROP COLUMN holder;
