-- Events applications send over mTLS (POST /events/:runtimeId): the CloudEvent `id` per
-- `source` of each application, kept 24 h, so a sender's retry is accepted without a second
-- delivery. Written in the transaction that publishes the event.
CREATE TABLE connector_event_ids (
  tenant_id text NOT NULL,
  application_id text NOT NULL,
  source text NOT NULL,
  event_id text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, application_id, source, event_id)
);
CREATE INDEX connector_event_ids_received ON connector_event_ids (received_at);
