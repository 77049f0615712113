-- The webhook delivery log becomes the outbox: SaveAlerts queues a pending
-- delivery of each event in the transaction that saves the event, and the
-- dispatcher sends what is due. next_attempt (unix microseconds, UTC) is
-- when a pending delivery that failed is due again; NULL: due now.

ALTER TABLE webhook_deliveries ADD COLUMN next_attempt INTEGER;

CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (created) WHERE status = 'pending';
