-- Usernames are unique per tenant, not across tenants: a global index told anyone creating an
-- account which names other tenants use (`409 username alice is taken`). Login names the tenant.
ALTER TABLE iam_accounts DROP CONSTRAINT iam_accounts_username_key;
DROP INDEX iam_accounts_username_ci;
-- Still case-insensitive: "Admin" and "admin" are one account within a tenant.
CREATE UNIQUE INDEX iam_accounts_tenant_username_ci ON iam_accounts (tenant_id, lower(username));
