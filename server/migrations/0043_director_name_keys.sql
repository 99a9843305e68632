-- Director (modules/director): on every Director table whose rows are looked up by
-- (tenant_id, id), no index but the primary key starts with tenant_id. The unique names of
-- applications and runtimes become (name, tenant_id); the per-application indexes of definitions,
-- documents, webhooks and webhook deliveries start with application_id (every query using them
-- names the application).
-- Why: a cached generic plan for `tenant_id = $1 AND id = $2` (prepared statements and the
-- foreign-key checks of definitions, documents, webhooks and API credentials) made while a table
-- held a page or two picked such an index with only `tenant_id` as its condition and kept it while
-- the table grew: every lookup then read all of the tenant's rows. On embedded PGlite (no
-- autovacuum; the hub's own VACUUM replans every 10 s at best) 9,600 registrations in batches of
-- 12 measured 9.9 ms of CPU per definitions INSERT (its foreign-key checks) instead of 1.1 ms.
-- ON CONFLICT (tenant_id, name) still finds the unique index: arbiters are matched by column set.
ALTER TABLE director_applications
  DROP CONSTRAINT director_applications_tenant_id_name_key,
  ADD CONSTRAINT director_applications_name_tenant_id_key UNIQUE (name, tenant_id);

ALTER TABLE director_runtimes
  DROP CONSTRAINT director_runtimes_tenant_id_name_key,
  ADD CONSTRAINT director_runtimes_name_tenant_id_key UNIQUE (name, tenant_id);

DROP INDEX director_definitions_app;
CREATE INDEX director_definitions_app ON director_definitions (application_id, tenant_id, kind, id);
DROP INDEX director_documents_app;
CREATE INDEX director_documents_app ON director_documents (application_id, tenant_id, id);
DROP INDEX director_webhooks_app;
CREATE INDEX director_webhooks_app ON director_webhooks (application_id, tenant_id);
DROP INDEX director_webhook_deliveries_app;
CREATE INDEX director_webhook_deliveries_app ON director_webhook_deliveries (application_id, tenant_id, created_at DESC, id);
