-- Director (modules/director): per tenant, a version that every change to the tenant's Director
-- rows raises inside the changing transaction, and the number of its applications.
-- - The response cache (director.cache.ts) serves an answer only while the version it was
--   computed at is still the tenant's; the version is read from this table on every request, so
--   a change committed by any process is seen by every other one at once.
-- - `applications` answers an unfiltered `applications.totalCount` without counting rows.
-- Statement triggers on every director table keep both, so no write path can forget them.
CREATE TABLE director_tenant_versions (
  tenant_id text PRIMARY KEY,
  version bigint NOT NULL DEFAULT 0,
  applications integer NOT NULL DEFAULT 0
);

INSERT INTO director_tenant_versions (tenant_id, applications)
  SELECT tenant_id, count(*) FROM director_applications GROUP BY tenant_id;

CREATE FUNCTION director_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- One row per tenant touched by the statement; a statement that changed no row changes nothing.
  IF TG_OP = 'DELETE' THEN
    INSERT INTO director_tenant_versions AS v (tenant_id, version, applications)
      SELECT tenant_id, 1, CASE WHEN TG_TABLE_NAME = 'director_applications' THEN -count(*) ELSE 0 END FROM old_rows GROUP BY tenant_id
      ON CONFLICT (tenant_id) DO UPDATE SET version = v.version + 1, applications = v.applications + excluded.applications;
  ELSE
    INSERT INTO director_tenant_versions AS v (tenant_id, version, applications)
      SELECT tenant_id, 1, CASE WHEN TG_TABLE_NAME = 'director_applications' AND TG_OP = 'INSERT' THEN count(*) ELSE 0 END FROM new_rows GROUP BY tenant_id
      ON CONFLICT (tenant_id) DO UPDATE SET version = v.version + 1, applications = v.applications + excluded.applications;
  END IF;
  RETURN NULL;
END $$;

-- Transition tables allow one event per trigger: three triggers per table.
DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['director_applications', 'director_runtimes', 'director_definitions', 'director_documents', 'director_webhooks',
                           'director_label_definitions', 'director_api_runtime_auths', 'director_system_auths', 'director_webhook_deliveries'] LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed()', t || '_inserted', t);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %I REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed()', t || '_updated', t);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %I REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed()', t || '_deleted', t);
  END LOOP;
END $$;
