-- OAuth sign-ins in progress: one row per state value, deleted when the
-- callback uses it (one-time) or after expires_at. Only a hash of the state
-- is stored; the PKCE verifier is sealed with the oauth-tokens key.
CREATE TABLE oauth_states (
    state_hash   bytea PRIMARY KEY,
    provider     text NOT NULL,
    verifier_enc text NOT NULL,
    redirect_uri text NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX oauth_states_expiry_idx ON oauth_states (expires_at);
