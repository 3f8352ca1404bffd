-- A volume declared per instance: each instance slot of the app has its
-- own copy (a volume_instances row, Podman name wh-vol-<id>-<n>), bound to
-- the worker of the slot's first deploy, released when the app scales
-- below the slot. n numbers a volume's copies and is never reused (a
-- released copy keeps its data on its worker until remove_after), so a
-- slot that comes back after a scale-down gets a fresh copy.
ALTER TABLE volumes
    ADD COLUMN per_instance boolean NOT NULL DEFAULT false,
    -- The app a released volume belonged to (its page shows when the data goes).
    ADD COLUMN former_app_id bigint REFERENCES apps(id) ON DELETE SET NULL;

CREATE TABLE volume_instances (
    volume_id    bigint NOT NULL REFERENCES volumes(id) ON DELETE CASCADE,
    n            integer NOT NULL CHECK (n >= 0),
    slot         integer NOT NULL CHECK (slot >= 0),
    worker_id    bigint REFERENCES workers(id) ON DELETE SET NULL,
    used_bytes   bigint NOT NULL DEFAULT 0,
    used_at      timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    released_at  timestamptz,
    remove_after timestamptz,
    removed_at   timestamptz,
    PRIMARY KEY (volume_id, n)
);
-- One live copy per slot.
CREATE UNIQUE INDEX volume_instances_slot_key ON volume_instances (volume_id, slot) WHERE released_at IS NULL;
CREATE INDEX volume_instances_sweep_idx ON volume_instances (remove_after) WHERE removed_at IS NULL AND remove_after IS NOT NULL;

-- Disk used by an app's volumes, metered with its other usage.
ALTER TABLE usage_samples ADD COLUMN volume_bytes bigint NOT NULL DEFAULT 0;
