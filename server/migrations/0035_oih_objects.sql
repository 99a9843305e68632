-- The object store OIH / elastic.io components reach as ELASTICIO_OBJECT_STORAGE_URI (attachments,
-- the splitter's reassemble): objects per tenant, kept in the database, each at most
-- PLEXUS_COMPONENT_OBJECT_MAX_BYTES and a tenant's together at most PLEXUS_COMPONENT_OBJECT_STORE_BYTES.
CREATE TABLE oih_objects (
  tenant_id text NOT NULL,
  id uuid NOT NULL,
  content_type text NOT NULL,
  size_bytes integer NOT NULL,
  data bytea NOT NULL,
  -- maester's searchable fields (`x-query-<key>` headers), looked up with `GET /objects?query[key]=value`.
  query jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- maester's `x-eio-ttl` (seconds): past it the object is gone.
  expires_at timestamptz,
  -- The step that stored it (flow, node, execution), for the audit trail and clean-up.
  flow_id text NOT NULL,
  node_id text NOT NULL,
  execution_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX oih_objects_created ON oih_objects (created_at);
