-- Secrets: credentials for flow steps, encrypted at rest (AES-256-GCM). The row never holds a
-- plaintext credential; `key_id` names the key its ciphertext was sealed with, so keys rotate.
CREATE TABLE secrets (
  id text PRIMARY KEY,
  tenant_id text NOT NULL,
  name text NOT NULL,
  type text NOT NULL CHECK (type IN ('basic', 'apiKey', 'oauth2', 'mixed')),
  key_id text NOT NULL,
  -- base64(iv ‖ auth tag ‖ ciphertext), with the tenant and id as associated data
  ciphertext text NOT NULL,
  -- bumped on every write: readers waiting for another's refresh watch it
  version integer NOT NULL DEFAULT 1,
  created_by text,
  -- oauth2: when the stored access token expires (not secret; tells when to refresh)
  token_expires_at timestamptz,
  last_refreshed_at timestamptz,
  last_error text,
  -- oauth2 refresh lease: one refresher at a time across processes
  refresh_locked_until timestamptz,
  refresh_lock_owner text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (tenant_id, name)
);
CREATE INDEX secrets_key_id ON secrets (key_id);
