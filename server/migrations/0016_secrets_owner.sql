-- A secret may belong to something else than its tenant's users: a flow's webhook signing
-- secret (owner `flow:<id>`) is created from the flow's settings and deleted with the flow.
-- NULL: made through the secrets API, its own thing.
ALTER TABLE secrets ADD COLUMN owner text;
CREATE INDEX secrets_owner ON secrets (tenant_id, owner) WHERE owner IS NOT NULL;
