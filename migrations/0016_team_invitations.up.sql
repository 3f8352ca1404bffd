-- Team invitations: a one-time link an owner or admin copies and sends;
-- only the SHA-256 of its token is stored.
CREATE TABLE team_invitations (
    id          bigserial PRIMARY KEY,
    team_id     bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    email       text NOT NULL,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    token_hash  bytea NOT NULL UNIQUE,
    invited_by  bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_by bigint REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX team_invitations_team_idx ON team_invitations (team_id) WHERE accepted_at IS NULL;
