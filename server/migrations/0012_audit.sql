-- The audit log: every `audit.*` event, append-only.
CREATE TABLE audit_records (
  id bigserial PRIMARY KEY,
  -- sha256 of the event as delivered: a redelivered event is stored once.
  event_key text NOT NULL UNIQUE,
  name text NOT NULL,
  module text NOT NULL,
  action text NOT NULL,
  result text,
  at timestamptz NOT NULL,
  tenant_id text,
  actor_id text,
  actor_name text,
  source_ip text,
  target_type text,
  target_id text,
  target_name text,
  details jsonb,
  service_name text,
  stored_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_records_at ON audit_records (at DESC, id DESC);
CREATE INDEX audit_records_tenant_at ON audit_records (tenant_id, at DESC, id DESC);
CREATE INDEX audit_records_name_at ON audit_records (name, at DESC);
CREATE INDEX audit_records_actor ON audit_records (actor_id);
CREATE INDEX audit_records_actor_name ON audit_records (actor_name);
CREATE INDEX audit_records_target ON audit_records (target_type, target_id);

-- Accounts whose names were erased: records that arrive late are stored anonymised too.
CREATE TABLE audit_erasures (
  account_id text PRIMARY KEY,
  erased_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only, enforced by the database: no DELETE, no TRUNCATE, and the only UPDATE allowed
-- replaces a person's name with the anonymisation marker.
CREATE FUNCTION audit_records_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'UPDATE'
     AND (NEW.actor_name IS NOT DISTINCT FROM OLD.actor_name OR NEW.actor_name = '[deleted user]')
     AND (NEW.target_name IS NOT DISTINCT FROM OLD.target_name OR NEW.target_name = '[deleted user]')
     AND ROW(NEW.id, NEW.event_key, NEW.name, NEW.module, NEW.action, NEW.result, NEW.at, NEW.tenant_id, NEW.actor_id,
             NEW.source_ip, NEW.target_type, NEW.target_id, NEW.details::text, NEW.service_name, NEW.stored_at)
         IS NOT DISTINCT FROM
         ROW(OLD.id, OLD.event_key, OLD.name, OLD.module, OLD.action, OLD.result, OLD.at, OLD.tenant_id, OLD.actor_id,
             OLD.source_ip, OLD.target_type, OLD.target_id, OLD.details::text, OLD.service_name, OLD.stored_at) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'audit records are append-only (% refused)', TG_OP;
END $$;

CREATE TRIGGER audit_records_no_update BEFORE UPDATE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_records_guard();
CREATE TRIGGER audit_records_no_delete BEFORE DELETE ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_records_guard();
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records FOR EACH STATEMENT EXECUTE FUNCTION audit_records_guard();
