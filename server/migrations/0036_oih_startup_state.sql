-- What an OIH component's startup(cfg) returned for a node of a running flow: handed to each
-- process call and to shutdown(cfg, data) when the flow stops, then deleted.
CREATE TABLE oih_startup_state (
  tenant_id text NOT NULL,
  flow_id text NOT NULL,
  node_id text NOT NULL,
  -- What shutdown needs once the flow is gone from the engine: the node as it was started.
  component_id text NOT NULL,
  function text NOT NULL,
  fields jsonb NOT NULL,
  credentials_id text,
  data jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (flow_id, node_id)
);
