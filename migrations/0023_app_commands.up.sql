-- An app's build and start command overrides ('' = the framework's own).
-- They run inside the build and app containers only, as /bin/sh -c argv.
ALTER TABLE apps
    ADD COLUMN build_command text NOT NULL DEFAULT '',
    ADD COLUMN start_command text NOT NULL DEFAULT '';
