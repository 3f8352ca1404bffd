ALTER TABLE workers DROP COLUMN images_bytes;
ALTER TABLE jobs DROP COLUMN superseded_by;
