-- Login rate limit per account and source. Failures were counted per username (so a few wrong
-- passwords from anywhere locked an account out) and per exact address (so moving to the next
-- IPv6 address reset the count). Now: per account (tenant + username) and source together, per
-- source (an IPv4 address, or an IPv6 /64), and per account from all sources with a high limit.
-- Old rows are keyed the old way and only live for the window: they go.
DELETE FROM iam_login_failures;
ALTER TABLE iam_login_failures DROP CONSTRAINT iam_login_failures_scope_check;
ALTER TABLE iam_login_failures ADD CONSTRAINT iam_login_failures_scope_check CHECK (scope IN ('account', 'source', 'account_source'));

-- Sources an account logged in from (hash of account and source): the per-account limit does
-- not apply to them, so failures from elsewhere cannot lock the user out of where they work.
CREATE TABLE iam_login_sources (
  key_hash text PRIMARY KEY,
  last_success_at timestamptz NOT NULL
);
CREATE INDEX iam_login_sources_at ON iam_login_sources (last_success_at);
