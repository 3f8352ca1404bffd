-- The event outbox: every domain event is written here in the transaction
-- that causes it; one relay at a time fans the rows out (webhook and chat
-- channel deliveries, the in-process bus) in id order and marks them
-- dispatched.
CREATE TABLE event_outbox (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    -- No foreign keys: an event outlives the app or team it is about
    -- (an app's deletion is itself reported).
    team_id       bigint,
    app_id        bigint,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX event_outbox_pending_idx ON event_outbox (id) WHERE dispatched_at IS NULL;
CREATE INDEX event_outbox_dispatched_idx ON event_outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;

-- A delivery knows its event (one delivery per endpoint and event, however
-- often the relay runs) and its app (deliveries of one app to one endpoint
-- go out one at a time, in order).
ALTER TABLE webhook_deliveries ADD COLUMN event_id bigint, ADD COLUMN app_id bigint;
CREATE UNIQUE INDEX webhook_deliveries_event_idx ON webhook_deliveries (webhook_id, event_id);
CREATE INDEX webhook_deliveries_chain_idx ON webhook_deliveries (webhook_id, app_id, id) WHERE state IN ('pending', 'delivering');
