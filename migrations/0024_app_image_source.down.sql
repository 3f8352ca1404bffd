ALTER TABLE apps DROP COLUMN source_image, DROP COLUMN registry_username, DROP COLUMN registry_password_enc;
