-- Director (modules/director): the unique names of applications and runtimes are indexed
-- (name, tenant_id) instead of (tenant_id, name), so no index but the primary key starts with
-- tenant_id.
-- Why: a cached generic plan for `tenant_id = $1 AND id = $2` (prepared statements and the
-- foreign-key checks of definitions, documents, webhooks and API credentials) made while the table
-- held a page or two picked the name index with only `tenant_id` as its condition, filtering `id`,
-- and kept it while the table grew: every lookup then read all of the tenant's rows. On embedded
-- PGlite (no autovacuum; the hub's own VACUUM replans every 10 s at best) 9,600 registrations in
-- batches of 12 measured 9.9 ms per definitions INSERT of 12 rows instead of 1.1 ms.
-- ON CONFLICT (tenant_id, name) still finds the index: arbiters are matched by column set.
ALTER TABLE director_applications
  DROP CONSTRAINT director_applications_tenant_id_name_key,
  ADD CONSTRAINT director_applications_name_tenant_id_key UNIQUE (name, tenant_id);

ALTER TABLE director_runtimes
  DROP CONSTRAINT director_runtimes_tenant_id_name_key,
  ADD CONSTRAINT director_runtimes_name_tenant_id_key UNIQUE (name, tenant_id);
