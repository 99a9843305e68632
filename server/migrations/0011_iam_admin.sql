-- IAM administration: tenant updates, case-insensitive usernames, token scopes, login rate limit.
ALTER TABLE iam_tenants ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- "Admin" and "admin" must not be two accounts: logins look usernames up case-insensitively.
CREATE UNIQUE INDEX iam_accounts_username_ci ON iam_accounts (lower(username));
CREATE INDEX iam_accounts_tenant ON iam_accounts (tenant_id, username);
CREATE INDEX iam_roles_tenant ON iam_roles (tenant_id, name);

-- A token may be narrowed to a subset of its account's permissions (NULL: all of them).
ALTER TABLE iam_tokens ADD COLUMN permissions text[];
CREATE INDEX iam_tokens_expires ON iam_tokens (expires_at) WHERE expires_at IS NOT NULL;

-- Failed logins, counted in a sliding window per username and per source address. Only hashes
-- of the keys are kept: a username field sometimes holds a mistyped password.
CREATE TABLE iam_login_failures (
  id bigserial PRIMARY KEY,
  scope text NOT NULL CHECK (scope IN ('username', 'address')),
  key_hash text NOT NULL,
  at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX iam_login_failures_key ON iam_login_failures (scope, key_hash, at DESC);
CREATE INDEX iam_login_failures_at ON iam_login_failures (at);
