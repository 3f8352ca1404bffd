-- Accounts, teams and access.

CREATE TABLE users (
    id                   bigserial PRIMARY KEY,
    email                text NOT NULL,
    name                 text NOT NULL DEFAULT '',
    password_hash        text,
    is_admin             boolean NOT NULL DEFAULT false,
    must_change_password boolean NOT NULL DEFAULT false,
    totp_secret_enc      text,
    totp_enabled         boolean NOT NULL DEFAULT false,
    totp_last_step       bigint NOT NULL DEFAULT 0,
    recovery_codes_hash  text[] NOT NULL DEFAULT '{}',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE oauth_identities (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider    text NOT NULL,
    subject     text NOT NULL,
    email       text NOT NULL DEFAULT '',
    token_enc   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, subject)
);
CREATE INDEX oauth_identities_user_idx ON oauth_identities (user_id);

CREATE TABLE teams (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL,
    slug       text NOT NULL UNIQUE,
    plan       text NOT NULL DEFAULT 'free',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
    team_id    bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

-- Sessions store only a hash of the cookie value.
CREATE TABLE sessions (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   bytea NOT NULL UNIQUE,
    csrf_token   text NOT NULL,
    user_agent   text NOT NULL DEFAULT '',
    ip           text NOT NULL DEFAULT '',
    mfa_passed   boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expiry_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    team_id      bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         text NOT NULL,
    token_hash   bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    scopes       text[] NOT NULL DEFAULT '{}',
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_team_idx ON api_tokens (team_id);

-- Workers dial out to the control plane; only a hash of their key is kept.
CREATE TABLE workers (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    api_key_hash     bytea NOT NULL UNIQUE,
    wg_ip            inet,
    zone             text NOT NULL DEFAULT '',
    status           text NOT NULL DEFAULT 'offline' CHECK (status IN ('online', 'offline', 'draining', 'revoked')),
    cpu_millis       integer NOT NULL DEFAULT 0 CHECK (cpu_millis >= 0),
    memory_mb        integer NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    disk_mb          integer NOT NULL DEFAULT 0 CHECK (disk_mb >= 0),
    max_jobs         integer NOT NULL DEFAULT 2 CHECK (max_jobs >= 0),
    disk_quota       text NOT NULL DEFAULT 'unknown',
    agent_version    text NOT NULL DEFAULT '',
    last_seen        timestamptz,
    revoked_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX workers_online_idx ON workers (status) WHERE status = 'online';

-- Apps: what users deploy.
CREATE TABLE apps (
    id             bigserial PRIMARY KEY,
    team_id        bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    name           text NOT NULL,
    git_repo       text NOT NULL DEFAULT '',
    git_branch     text NOT NULL DEFAULT 'main',
    git_provider   text NOT NULL DEFAULT '',
    git_token_enc  text,
    framework      text NOT NULL DEFAULT 'auto',
    port           integer NOT NULL DEFAULT 0 CHECK (port >= 0 AND port <= 65535),
    host_port      integer NOT NULL DEFAULT 0 CHECK (host_port >= 0 AND host_port <= 65535),
    status         text NOT NULL DEFAULT 'created' CHECK (status IN ('created', 'building', 'deploying', 'running', 'stopped', 'failed', 'crashed')),
    worker_id      bigint REFERENCES workers(id) ON DELETE SET NULL,
    cpu_millis     integer NOT NULL DEFAULT 500 CHECK (cpu_millis >= 0),
    memory_mb      integer NOT NULL DEFAULT 256 CHECK (memory_mb >= 0),
    disk_mb        integer NOT NULL DEFAULT 1024 CHECK (disk_mb >= 0),
    bandwidth_kbit integer NOT NULL DEFAULT 0 CHECK (bandwidth_kbit >= 0),
    health_path    text NOT NULL DEFAULT '/',
    replicas       integer NOT NULL DEFAULT 1 CHECK (replicas >= 0),
    preview_of     bigint REFERENCES apps(id) ON DELETE CASCADE,
    pr_number      integer,
    webhook_secret_enc text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX apps_team_idx ON apps (team_id);
CREATE INDEX apps_worker_idx ON apps (worker_id);
-- The routing provider reads running apps only.
CREATE INDEX apps_running_idx ON apps (worker_id, slug) WHERE status = 'running';
CREATE UNIQUE INDEX apps_preview_key ON apps (preview_of, pr_number) WHERE preview_of IS NOT NULL;

CREATE TABLE deployments (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'building', 'deploying', 'succeeded', 'failed', 'cancelled', 'superseded')),
    commit_sha    text NOT NULL DEFAULT '',
    commit_message text NOT NULL DEFAULT '',
    trigger       text NOT NULL DEFAULT 'manual',
    image         text NOT NULL DEFAULT '',
    rollback_of   bigint REFERENCES deployments(id) ON DELETE SET NULL,
    worker_id     bigint REFERENCES workers(id) ON DELETE SET NULL,
    error         text NOT NULL DEFAULT '',
    created_by    bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz
);
CREATE INDEX deployments_app_idx ON deployments (app_id, id DESC);

CREATE TABLE deployment_logs (
    id            bigserial PRIMARY KEY,
    deployment_id bigint NOT NULL REFERENCES deployments(id) ON DELETE CASCADE,
    ts            timestamptz NOT NULL DEFAULT now(),
    stream        text NOT NULL DEFAULT 'build',
    line          text NOT NULL
);
CREATE INDEX deployment_logs_dep_idx ON deployment_logs (deployment_id, id);

CREATE TABLE env_vars (
    id         bigserial PRIMARY KEY,
    app_id     bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key        text NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    value_enc  text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, key)
);

-- The job queue. Claimed with SELECT ... FOR UPDATE SKIP LOCKED.
CREATE TABLE jobs (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    app_id       bigint REFERENCES apps(id) ON DELETE CASCADE,
    deployment_id bigint REFERENCES deployments(id) ON DELETE CASCADE,
    worker_id    bigint REFERENCES workers(id) ON DELETE SET NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'assigned', 'running', 'succeeded', 'failed', 'cancelled')),
    payload      jsonb NOT NULL DEFAULT '{}',
    priority     smallint NOT NULL DEFAULT 0,
    attempt      integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    error        text NOT NULL DEFAULT '',
    cpu_millis   integer NOT NULL DEFAULT 0,
    memory_mb    integer NOT NULL DEFAULT 0,
    run_after    timestamptz NOT NULL DEFAULT now(),
    timeout_s    integer NOT NULL DEFAULT 900,
    assigned_at  timestamptz,
    acked_at     timestamptz,
    deadline_at  timestamptz,
    finished_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
-- The claim query: pending jobs in priority/age order.
CREATE INDEX jobs_pending_idx ON jobs (priority DESC, id) WHERE state = 'pending';
-- Stuck-job recovery and per-worker load.
CREATE INDEX jobs_active_idx ON jobs (worker_id, deadline_at) WHERE state IN ('assigned', 'running');
CREATE INDEX jobs_app_idx ON jobs (app_id);

-- Custom domains, routes and certificates.
CREATE TABLE domains (
    id          bigserial PRIMARY KEY,
    app_id      bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    hostname    text NOT NULL,
    token       text NOT NULL,
    verified_at timestamptz,
    last_check_at timestamptz,
    last_error  text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX domains_hostname_key ON domains (lower(hostname));
CREATE INDEX domains_verified_idx ON domains (app_id) WHERE verified_at IS NOT NULL;

CREATE TABLE routes (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    deployment_id bigint REFERENCES deployments(id) ON DELETE CASCADE,
    path_prefix   text NOT NULL DEFAULT '/' CHECK (path_prefix LIKE '/%'),
    port          integer NOT NULL CHECK (port > 0 AND port <= 65535),
    protocol      text NOT NULL DEFAULT 'http' CHECK (protocol IN ('http', 'https', 'h2c', 'tcp')),
    weight        integer NOT NULL DEFAULT 100 CHECK (weight >= 0 AND weight <= 1000),
    strip_prefix  boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX routes_app_idx ON routes (app_id);

CREATE TABLE certificates (
    id          bigserial PRIMARY KEY,
    hostname    text NOT NULL UNIQUE,
    issuer      text NOT NULL DEFAULT '',
    not_before  timestamptz,
    not_after   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'valid',
    last_error  text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX certificates_expiry_idx ON certificates (not_after);

-- Shared certmagic storage for proxies.
CREATE TABLE certmagic_data (
    key         text PRIMARY KEY,
    value       bytea NOT NULL,
    modified_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE certmagic_locks (
    key        text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

-- Outbound webhooks with a persisted outbox.
CREATE TABLE webhooks (
    id          bigserial PRIMARY KEY,
    team_id     bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    app_id      bigint REFERENCES apps(id) ON DELETE CASCADE,
    kind        text NOT NULL DEFAULT 'http' CHECK (kind IN ('http', 'shoutrrr')),
    url_enc     text NOT NULL,
    events      text[] NOT NULL DEFAULT '{}',
    secret_enc  text NOT NULL,
    previous_secret_enc text,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_team_idx ON webhooks (team_id);

CREATE TABLE webhook_deliveries (
    id            bigserial PRIMARY KEY,
    webhook_id    bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event         text NOT NULL,
    msg_id        text NOT NULL UNIQUE,
    payload       jsonb NOT NULL,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivering', 'succeeded', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status   integer,
    last_error    text NOT NULL DEFAULT '',
    locked_until  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE state IN ('pending', 'delivering');
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, id DESC);

-- Alerts.
CREATE TABLE alert_rules (
    id           bigserial PRIMARY KEY,
    app_id       bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('cpu', 'memory', 'network', 'disk', 'offline', 'crashloop', 'deployment_failed')),
    threshold    double precision NOT NULL DEFAULT 0,
    sustain_s    integer NOT NULL DEFAULT 120 CHECK (sustain_s >= 0),
    enabled      boolean NOT NULL DEFAULT true,
    pending_since timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_rules_app_idx ON alert_rules (app_id);

CREATE TABLE alerts (
    id          bigserial PRIMARY KEY,
    rule_id     bigint NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
    app_id      bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    kind        text NOT NULL,
    value       double precision NOT NULL DEFAULT 0,
    message     text NOT NULL DEFAULT '',
    fired_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
-- At most one open alert per rule.
CREATE UNIQUE INDEX alerts_open_key ON alerts (rule_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_app_idx ON alerts (app_id, fired_at DESC);

-- Usage metering in 5-minute buckets.
CREATE TABLE usage_samples (
    app_id        bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    bucket        timestamptz NOT NULL,
    samples       integer NOT NULL DEFAULT 0,
    cpu_pct_sum   double precision NOT NULL DEFAULT 0,
    cpu_pct_max   double precision NOT NULL DEFAULT 0,
    mem_bytes_sum double precision NOT NULL DEFAULT 0,
    mem_bytes_max bigint NOT NULL DEFAULT 0,
    net_rx_bytes  bigint NOT NULL DEFAULT 0,
    net_tx_bytes  bigint NOT NULL DEFAULT 0,
    disk_bytes    bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, bucket)
);
CREATE INDEX usage_samples_bucket_idx ON usage_samples (bucket);

CREATE TABLE runtime_logs (
    id        bigserial PRIMARY KEY,
    app_id    bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    ts        timestamptz NOT NULL,
    stream    text NOT NULL DEFAULT 'stdout',
    line      text NOT NULL
);
CREATE INDEX runtime_logs_app_idx ON runtime_logs (app_id, id DESC);
CREATE INDEX runtime_logs_ts_idx ON runtime_logs (ts);

CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    team_id    bigint REFERENCES teams(id) ON DELETE CASCADE,
    user_id    bigint REFERENCES users(id) ON DELETE SET NULL,
    action     text NOT NULL,
    target     text NOT NULL DEFAULT '',
    details    jsonb NOT NULL DEFAULT '{}',
    ip         text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_team_idx ON audit_events (team_id, id DESC);

-- Inbound git webhook deliveries, for de-duplication.
CREATE TABLE git_deliveries (
    provider    text NOT NULL,
    delivery_id text NOT NULL,
    app_id      bigint REFERENCES apps(id) ON DELETE CASCADE,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, delivery_id)
);
