DROP INDEX webhook_deliveries_chain_idx;
DROP INDEX webhook_deliveries_event_idx;
ALTER TABLE webhook_deliveries DROP COLUMN event_id, DROP COLUMN app_id;
DROP TABLE event_outbox;
