-- Persistent volumes: named Podman volumes on one worker, mounted into
-- every container of the app. A volume outlives its app: deleting the app
-- (or the volume) releases it, and the data goes only after remove_after.
CREATE TABLE volumes (
    id           bigserial PRIMARY KEY,
    team_id      bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    app_id       bigint REFERENCES apps(id) ON DELETE SET NULL,
    app_slug     text NOT NULL,
    name         text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'),
    mount_path   text NOT NULL,
    size_mb      integer NOT NULL CHECK (size_mb > 0),
    -- The worker that holds the data (set by the first deploy): the app
    -- is placed only there.
    worker_id    bigint REFERENCES workers(id) ON DELETE SET NULL,
    used_bytes   bigint NOT NULL DEFAULT 0,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    remove_after timestamptz,
    removed_at   timestamptz
);
CREATE UNIQUE INDEX volumes_app_name_key ON volumes (app_id, name) WHERE app_id IS NOT NULL;
CREATE UNIQUE INDEX volumes_app_path_key ON volumes (app_id, mount_path) WHERE app_id IS NOT NULL;
CREATE INDEX volumes_team_idx ON volumes (team_id, id);
CREATE INDEX volumes_sweep_idx ON volumes (remove_after) WHERE removed_at IS NULL AND remove_after IS NOT NULL;

-- A job may name the only worker it can run on (a volume's removal).
ALTER TABLE jobs ADD COLUMN pin_worker_id bigint REFERENCES workers(id) ON DELETE CASCADE;

-- Scheduled jobs of an app. next_run_at is the next time the schedule is
-- due; the replica that claims a due row (FOR UPDATE SKIP LOCKED) records
-- the run and moves next_run_at in one transaction.
CREATE TABLE cron_jobs (
    id            bigserial PRIMARY KEY,
    app_id        bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$'),
    schedule      text NOT NULL,
    timezone      text NOT NULL DEFAULT 'UTC',
    command       text[] NOT NULL,
    timeout_s     integer NOT NULL DEFAULT 600 CHECK (timeout_s BETWEEN 1 AND 86400),
    allow_overlap boolean NOT NULL DEFAULT false,
    enabled       boolean NOT NULL DEFAULT true,
    next_run_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (app_id, name)
);
CREATE INDEX cron_jobs_due_idx ON cron_jobs (next_run_at) WHERE enabled;

-- One row per (job, scheduled time): the unique key makes a second claim
-- of the same time impossible.
CREATE TABLE cron_runs (
    id           bigserial PRIMARY KEY,
    cron_job_id  bigint NOT NULL REFERENCES cron_jobs(id) ON DELETE CASCADE,
    app_id       bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    scheduled_at timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'succeeded', 'failed', 'skipped')),
    job_id       bigint REFERENCES jobs(id) ON DELETE SET NULL,
    exit_code    integer,
    duration_ms  bigint,
    log_tail     text NOT NULL DEFAULT '',
    error        text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    UNIQUE (cron_job_id, scheduled_at)
);
CREATE INDEX cron_runs_job_idx ON cron_runs (cron_job_id, id DESC);
CREATE INDEX cron_runs_open_idx ON cron_runs (cron_job_id) WHERE state = 'pending';
