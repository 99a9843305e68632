-- Components registered by tenants (built-ins live in code). The descriptor is kept as it was
-- read at registration; the code stays where it was installed on the hub (source_path).
CREATE TABLE components_registry (
  tenant_id text NOT NULL,
  name text NOT NULL,
  version text NOT NULL,
  descriptor jsonb NOT NULL,
  -- 'directory': a folder on the hub; 'package': an npm package installed on the hub.
  source_kind text NOT NULL CHECK (source_kind IN ('directory', 'package')),
  -- What the caller named (the folder or the package name) and where it resolved to.
  source text NOT NULL,
  source_path text NOT NULL,
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name)
);
