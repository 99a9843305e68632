-- Director (modules/director): settings a tenant chooses for itself. `spec_validation` overrides
-- PLEXUS_DIRECTOR_SPEC_VALIDATION for the tenant's specs; NULL keeps the installation's default.
CREATE TABLE director_tenant_settings (
  tenant_id text PRIMARY KEY,
  spec_validation text CHECK (spec_validation IN ('lenient', 'strict'))
);

-- Settings are part of what a query may answer: their changes raise the tenant version (0041).
CREATE TRIGGER director_tenant_settings_inserted AFTER INSERT ON director_tenant_settings REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed();
CREATE TRIGGER director_tenant_settings_updated AFTER UPDATE ON director_tenant_settings REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed();
CREATE TRIGGER director_tenant_settings_deleted AFTER DELETE ON director_tenant_settings REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION director_changed();
