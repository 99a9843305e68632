-- IAM: tenants, accounts (users and service accounts), roles, tokens.
CREATE TABLE iam_tenants (
  id text PRIMARY KEY,
  name text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE iam_roles (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES iam_tenants(id) ON DELETE CASCADE,
  name text NOT NULL,
  permissions text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);

CREATE TABLE iam_accounts (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES iam_tenants(id),
  -- Login names are global: login takes no tenant.
  username text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('user', 'service')),
  password_hash text,
  permissions text[] NOT NULL DEFAULT '{}',
  role_ids text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE iam_tokens (
  id text PRIMARY KEY,
  account_id text NOT NULL REFERENCES iam_accounts(id) ON DELETE CASCADE,
  -- sha256 of the token; the token itself is never stored.
  token_hash text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('session', 'persistent')),
  description text,
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX iam_tokens_account ON iam_tokens (account_id);
