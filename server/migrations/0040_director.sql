-- Director (modules/director): applications, runtimes, their API / event definitions,
-- documents, webhooks, label definitions, API credentials per runtime, system auths and
-- webhook deliveries. Every row carries its tenant; every lookup names it.
-- Labels live in a jsonb column of their object: reading a page of applications is one scan,
-- and label filters are jsonb operators (GIN index below).

CREATE TABLE director_applications (
  tenant_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  provider_name text,
  description text,
  integration_level text NOT NULL DEFAULT 'APPLICATION'
    CHECK (integration_level IN ('BASIC', 'APPLICATION', 'PROXY', 'SERVICE')),
  health_check_url text,
  labels jsonb NOT NULL DEFAULT '{}',
  status_condition text NOT NULL DEFAULT 'INITIAL',
  status_timestamp timestamptz NOT NULL DEFAULT now(),
  -- setDefaultEventingForApplication: the runtime whose eventing URL the application uses.
  default_eventing_runtime_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
);
CREATE INDEX director_applications_labels ON director_applications USING gin (labels);

CREATE TABLE director_runtimes (
  tenant_id text NOT NULL,
  id text NOT NULL,
  name text NOT NULL,
  description text,
  labels jsonb NOT NULL DEFAULT '{}',
  status_condition text NOT NULL DEFAULT 'INITIAL',
  status_timestamp timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, name)
);
CREATE INDEX director_runtimes_labels ON director_runtimes USING gin (labels);

-- API and event definitions share one table: `kind` tells them apart.
CREATE TABLE director_definitions (
  tenant_id text NOT NULL,
  id text NOT NULL,
  application_id text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('api', 'event')),
  name text NOT NULL,
  description text,
  target_url text,
  group_name text,
  -- {type, format} without data; null when no spec was given.
  spec jsonb,
  spec_data text,
  -- {valid, problems:[{message, path}]} from the spec's parser; null until validated.
  spec_validation jsonb,
  -- {url, mode, filter, auth? (masked), authSecretId?}; null without a fetch request.
  fetch_request jsonb,
  fetch_status text CHECK (fetch_status IN ('INITIAL', 'SUCCEEDED', 'FAILED')),
  fetch_message text,
  fetch_timestamp timestamptz,
  -- {value, deprecated, deprecatedSince, forRemoval}
  version jsonb,
  -- The API's defaultAuth: masked here (secrets as ***), in clear only in the secrets module.
  default_auth jsonb,
  default_auth_secret_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, application_id) REFERENCES director_applications (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX director_definitions_app ON director_definitions (tenant_id, application_id, kind, id);

CREATE TABLE director_documents (
  tenant_id text NOT NULL,
  id text NOT NULL,
  application_id text NOT NULL,
  title text NOT NULL,
  display_name text NOT NULL,
  description text NOT NULL,
  format text NOT NULL,
  kind text,
  data text,
  fetch_request jsonb,
  fetch_status text,
  fetch_message text,
  fetch_timestamp timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, application_id) REFERENCES director_applications (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX director_documents_app ON director_documents (tenant_id, application_id, id);

CREATE TABLE director_webhooks (
  tenant_id text NOT NULL,
  id text NOT NULL,
  application_id text NOT NULL,
  type text NOT NULL,
  url text NOT NULL,
  auth jsonb,
  auth_secret_id text,
  -- The Standard Webhooks signing key, kept by the secrets module.
  signing_secret_id text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, application_id) REFERENCES director_applications (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX director_webhooks_app ON director_webhooks (tenant_id, application_id);

CREATE TABLE director_label_definitions (
  tenant_id text NOT NULL,
  key text NOT NULL,
  schema jsonb,
  PRIMARY KEY (tenant_id, key)
);

-- Credentials an application set for one runtime on one API (seed 001).
CREATE TABLE director_api_runtime_auths (
  tenant_id text NOT NULL,
  api_id text NOT NULL,
  runtime_id text NOT NULL,
  auth jsonb NOT NULL,
  secret_id text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, api_id, runtime_id),
  FOREIGN KEY (tenant_id, api_id) REFERENCES director_definitions (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, runtime_id) REFERENCES director_runtimes (tenant_id, id) ON DELETE CASCADE
);

-- Who may speak as an application or a runtime: an IAM account (today) or, after the
-- Connector, a client certificate. `account_id` is how a caller is recognised.
CREATE TABLE director_system_auths (
  tenant_id text NOT NULL,
  id text NOT NULL,
  object_type text NOT NULL CHECK (object_type IN ('application', 'runtime')),
  object_id text NOT NULL,
  kind text NOT NULL DEFAULT 'iam-token',
  account_id text UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX director_system_auths_object ON director_system_auths (tenant_id, object_type, object_id);

-- One notification to one webhook; its attempts update the row. `message_id` is the
-- Standard Webhooks `webhook-id`, unique per change, so a notification is stored (and sent) once.
CREATE TABLE director_webhook_deliveries (
  tenant_id text NOT NULL,
  id text NOT NULL,
  webhook_id text NOT NULL,
  application_id text NOT NULL,
  runtime_id text,
  message_id text NOT NULL,
  type text NOT NULL,
  payload jsonb NOT NULL,
  status text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
  attempts integer NOT NULL DEFAULT 0,
  http_status integer,
  error text,
  next_attempt_at timestamptz,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (webhook_id, message_id)
);
CREATE INDEX director_webhook_deliveries_app ON director_webhook_deliveries (tenant_id, application_id, created_at DESC, id);
