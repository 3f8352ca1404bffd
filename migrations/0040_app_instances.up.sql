-- An app runs apps.replicas instances. Instance 0 is the app's own row
-- (worker_id, host_port, status); instances 1..replicas-1 are here, one
-- row per slot, each on its worker with its deployment and host port.
-- Rolling deploys move one slot at a time (max_surge new instances at
-- once, max_unavailable old ones stopped before their successor runs).
CREATE TABLE app_instances (
    app_id        bigint NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    slot          integer NOT NULL CHECK (slot > 0),
    worker_id     bigint REFERENCES workers(id) ON DELETE SET NULL,
    deployment_id bigint REFERENCES deployments(id) ON DELETE SET NULL,
    host_port     integer NOT NULL DEFAULT 0 CHECK (host_port >= 0 AND host_port <= 65535),
    -- unhealthy: running but failing its health check (out of routing
    -- while another instance is healthy).
    status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'unhealthy', 'crashed', 'failed')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, slot)
);
CREATE INDEX app_instances_worker_idx ON app_instances (worker_id);

-- unhealthy_since: the app's first instance runs but fails its health
-- check (the worker's report).
ALTER TABLE apps
    ADD COLUMN max_surge integer NOT NULL DEFAULT 1 CHECK (max_surge >= 1),
    ADD COLUMN max_unavailable integer NOT NULL DEFAULT 0 CHECK (max_unavailable >= 0),
    ADD COLUMN unhealthy_since timestamptz;
