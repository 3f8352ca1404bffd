-- A job cancelled because a newer deployment of its app replaced it: its
-- deployment ends 'superseded' rather than 'cancelled'.
ALTER TABLE jobs ADD COLUMN superseded_by bigint REFERENCES deployments(id) ON DELETE SET NULL;
-- Disk used by a worker's app images, as it last reported.
ALTER TABLE workers ADD COLUMN images_bytes bigint NOT NULL DEFAULT 0 CHECK (images_bytes >= 0);
