-- An app deployed from a prebuilt image instead of a git repository:
-- its reference (registry/name:tag or @sha256 digest) and an optional
-- registry login, the password sealed (write-only).
ALTER TABLE apps
    ADD COLUMN source_image text NOT NULL DEFAULT '',
    ADD COLUMN registry_username text NOT NULL DEFAULT '',
    ADD COLUMN registry_password_enc text;
