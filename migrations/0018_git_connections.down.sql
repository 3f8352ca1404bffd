ALTER TABLE oauth_states DROP COLUMN purpose, DROP COLUMN team_id, DROP COLUMN user_id;
ALTER TABLE apps DROP COLUMN git_connection_id, DROP COLUMN git_repo_name, DROP COLUMN hook_id,
    DROP COLUMN auto_deploy, DROP COLUMN previews, DROP COLUMN fork_previews, DROP COLUMN from_fork;
DROP TABLE git_connections;
