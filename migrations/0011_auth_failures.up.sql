-- Failed sign-in attempts, shared by every control plane replica so one
-- limit holds however many there are (internal/ratelimit.Failures).
CREATE TABLE auth_failures (
    key text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX auth_failures_key_at ON auth_failures (key, at);
CREATE INDEX auth_failures_at ON auth_failures (at);
