-- A team's connections to git providers: an OAuth grant (with repository
-- scopes) or a personal access token. Tokens are sealed with the
-- git-tokens key, bound to the connection's id; they never leave the
-- control plane except towards the provider and, for a clone, towards the
-- worker that builds.
CREATE TABLE git_connections (
    id                bigserial PRIMARY KEY,
    team_id           bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    provider          text NOT NULL CHECK (provider IN ('github', 'gitlab', 'bitbucket', 'codeberg')),
    -- api_url: '' for the provider's public API (or the operator's
    -- configured one); a self-hosted instance's API root otherwise.
    api_url           text NOT NULL DEFAULT '',
    method            text NOT NULL CHECK (method IN ('oauth', 'token')),
    account           text NOT NULL DEFAULT '',
    token_enc         text NOT NULL,
    refresh_token_enc text,
    expires_at        timestamptz,
    created_by        bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX git_connections_team_idx ON git_connections (team_id);

-- What an app needs for push-to-deploy through a connection: the
-- repository's name at the provider, the hook created there, and what the
-- app takes from its repository's events.
ALTER TABLE apps
    ADD COLUMN git_connection_id bigint REFERENCES git_connections(id) ON DELETE SET NULL,
    ADD COLUMN git_repo_name text NOT NULL DEFAULT '',
    ADD COLUMN hook_id text NOT NULL DEFAULT '',
    ADD COLUMN auto_deploy boolean NOT NULL DEFAULT true,
    ADD COLUMN previews boolean NOT NULL DEFAULT true,
    ADD COLUMN fork_previews boolean NOT NULL DEFAULT false,
    -- A preview of a pull request from a fork: it builds the fork's code
    -- with none of the parent app's variables or tokens.
    ADD COLUMN from_fork boolean NOT NULL DEFAULT false;

-- OAuth flows that connect a provider to a team (not a sign-in).
ALTER TABLE oauth_states
    ADD COLUMN purpose text NOT NULL DEFAULT 'signin',
    ADD COLUMN team_id bigint REFERENCES teams(id) ON DELETE CASCADE,
    ADD COLUMN user_id bigint REFERENCES users(id) ON DELETE CASCADE;
