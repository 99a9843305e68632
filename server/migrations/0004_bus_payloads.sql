-- Message bodies too large for one NATS message (the server's max_payload, 1 MiB by default).
-- The NATS adapter stores such a body here, in the same transaction as its outbox row when there
-- is one, and sends a message naming the row (header Plexus-Payload); a consumer reads the body
-- back before its handler runs. The SQL adapter has no such limit and never uses this table.
CREATE TABLE bus_payloads (
  id text PRIMARY KEY,
  payload text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- When the job that carried it was acked or dead-lettered. Rows are swept an hour later (a lost
  -- ack redelivers the job, which still needs its body meanwhile); an event's body, read by every
  -- group that subscribed, is swept after 30 days.
  settled_at timestamptz
);
CREATE INDEX bus_payloads_sweep ON bus_payloads (created_at);
