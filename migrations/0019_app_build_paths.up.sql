-- Where an app's build starts inside its repository (a monorepo's
-- sub-directory) and which Dockerfile it uses ('' = detect).
ALTER TABLE apps
    ADD COLUMN root_dir text NOT NULL DEFAULT '',
    ADD COLUMN dockerfile text NOT NULL DEFAULT '';
