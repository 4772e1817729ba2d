-- The W3C traceparent of the span that wrote an outbox event, so the relay that publishes
-- it later (after a crash, or a broker outage) continues the run's one trace.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS traceparent text;
