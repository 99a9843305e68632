-- The mTLS listener trusts what it read about a certificate for longer than a second only while
-- it has asked, within the last second, which certificates were revoked lately (one query for
-- all of them, connector.service.ts): that question reads the recent end of this index.
CREATE INDEX connector_certificates_revoked_at ON connector_certificates (revoked_at) WHERE revoked_at IS NOT NULL;
