-- Connector (issue 12): one-time tokens, the hub's certificate authority, issued client
-- certificates and their revocation. The Director keeps system auths; a certificate's CN names one.

-- One-time tokens are stored as their SHA-256 only. `purpose` pairing: issued by the Director
-- (requestOneTimeTokenFor…), redeemed by `configuration`; csr: issued by `configuration`,
-- redeemed by `signCertificateSigningRequest`. A token is good while used_at, invalidated_at
-- are null and expires_at is ahead; redeeming sets used_at in one guarded UPDATE (one winner).
CREATE TABLE connector_one_time_tokens (
  token_hash text PRIMARY KEY,
  tenant_id text NOT NULL,
  object_type text NOT NULL CHECK (object_type IN ('application', 'runtime')),
  object_id text NOT NULL,
  system_auth_id text NOT NULL,
  purpose text NOT NULL CHECK (purpose IN ('pairing', 'csr')),
  created_by text,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  used_at timestamptz,
  invalidated_at timestamptz
);
CREATE INDEX connector_one_time_tokens_object ON connector_one_time_tokens (tenant_id, object_type, object_id, created_at DESC);
CREATE INDEX connector_one_time_tokens_expires ON connector_one_time_tokens (expires_at);

-- The deployment's certificate authority, shared by every process: the certificate in PEM and
-- the PKCS#8 key sealed under PLEXUS_SECRET_KEY (AES-256-GCM, secrets keyring). One row.
CREATE TABLE connector_ca (
  id text PRIMARY KEY CHECK (id = 'default'),
  certificate_pem text NOT NULL,
  key_id text NOT NULL,
  key_ciphertext text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- Every client certificate issued, keyed by the SHA-256 fingerprint of its DER (what the TLS
-- peer presents). revoked_at set: refused from then on by every process (the revocation list).
CREATE TABLE connector_certificates (
  fingerprint text PRIMARY KEY,
  serial text NOT NULL,
  tenant_id text NOT NULL,
  system_auth_id text NOT NULL,
  object_type text NOT NULL CHECK (object_type IN ('application', 'runtime')),
  object_id text NOT NULL,
  subject text NOT NULL,
  not_before timestamptz NOT NULL,
  not_after timestamptz NOT NULL,
  issued_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz,
  revoked_reason text
);
CREATE INDEX connector_certificates_object ON connector_certificates (tenant_id, object_type, object_id);
CREATE INDEX connector_certificates_system_auth ON connector_certificates (tenant_id, system_auth_id);
