/**
 * The Connector end to end (issue 12): one-time tokens from the Director, configuration, CSR
 * signing, then calls over real TLS with the issued certificate (Node's https client): the
 * Director as the application itself, renewal, revocation by the holder and by an
 * administrator, and certificates of another CA or self-signed refused in the handshake.
 */
import { X509Certificate } from 'node:crypto';
import type https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gql, ok, registerApp, registerRuntime } from '../helpers/director.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import {
  b64,
  csrPem,
  EC_P256,
  generateKeys,
  keepAliveAgent,
  keyPem,
  RSA_1024,
  RSA_2048,
  selfSigned,
  signedByOtherCa,
  tlsRequest,
  unb64,
  type TlsIdentity,
} from '../helpers/connector.js';

const CONFIGURATION = '{ configuration { token { token } certificateSigningRequestInfo { subject keyAlgorithm } managementPlaneInfo { directorURL certificateSecuredConnectorURL } } }';
const SIGN = 'mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { certificateChain caCertificate clientCertificate } }';

async function connector(hub: TestHub, token: string | undefined, query: string, variables?: Record<string, unknown>) {
  const res = await hub.api('POST', '/connector/graphql', { query, variables }, null, token === undefined ? {} : { 'connector-token': token });
  return { status: res.status, data: res.body?.data, errors: res.body?.errors as Array<{ message: string; extensions: { error_code: number } }> | undefined };
}

async function requestToken(hub: TestHub, type: 'Application' | 'Runtime', id: string): Promise<{ token: string; connectorURL: string; expiresAt: string; used: boolean }> {
  return (await ok(hub, `mutation { result: requestOneTimeTokenFor${type}(id: "${id}") { token connectorURL expiresAt used } }`)).result;
}

/** The whole pairing of an application: token → configuration → CSR signed. */
async function pair(hub: TestHub, type: 'Application' | 'Runtime', id: string): Promise<TlsIdentity & { subject: string; systemAuthId: string }> {
  const { token } = await requestToken(hub, type, id);
  const cfg = await connector(hub, token, CONFIGURATION);
  expect(cfg.errors).toBeUndefined();
  const subject: string = cfg.data.configuration.certificateSigningRequestInfo.subject;
  const keys = await generateKeys(EC_P256);
  const signed = await connector(hub, cfg.data.configuration.token.token, SIGN, { csr: b64(await csrPem(subject, keys)) });
  expect(signed.errors).toBeUndefined();
  return { key: await keyPem(keys), cert: unb64(signed.data.result.clientCertificate), ca: unb64(signed.data.result.caCertificate), subject, systemAuthId: subject.split('CN=')[1]! };
}

describe.each(['pglite', 'postgres'] as const)('connector: pairing and mTLS on %s', (target) => {
  let hub: TestHub;
  let mtls: string;

  beforeAll(async () => {
    hub = await createTestHub({ target, env: { PLEXUS_MTLS_PORT: '0', PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL: '1500ms' } });
    await hub.listen();
    mtls = hub.mtlsUrl();
  });
  afterAll(async () => {
    await hub?.close();
  });

  it('a one-time token is ≥ 256 bits, shows its expiry, works once, and its use is visible to the requester', async () => {
    const app = await registerApp(hub, '{ name: "shop" }');
    const before = Date.now();
    const t = await requestToken(hub, 'Application', app.id);
    expect(Buffer.from(t.token, 'base64url').length).toBeGreaterThanOrEqual(32);
    expect(t.used).toBe(false);
    expect(t.connectorURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/connector\/graphql$/);
    const ttl = Date.parse(t.expiresAt) - before;
    expect(ttl).toBeGreaterThan(4 * 60_000);
    expect(ttl).toBeLessThanOrEqual(5 * 60_000 + 5_000);

    const status = async () => (await ok(hub, `{ application(id: "${app.id}") { oneTimeToken { used usedAt expiresAt expired invalidated } } }`)).application.oneTimeToken;
    expect(await status()).toMatchObject({ used: false, usedAt: null, expired: false, invalidated: false });

    const first = await connector(hub, t.token, CONFIGURATION);
    expect(first.status).toBe(200);
    const cfg = first.data.configuration;
    expect(cfg.certificateSigningRequestInfo.subject).toMatch(/^O=Plexus,OU=Connector,L=Local,ST=Local,C=DE,CN=[0-9a-f-]{36}$/);
    expect(cfg.certificateSigningRequestInfo.keyAlgorithm).toBe('rsa2048');
    expect(cfg.managementPlaneInfo.certificateSecuredConnectorURL).toBe(`${mtls}/connector/graphql`);
    expect(cfg.managementPlaneInfo.directorURL).toBe(`${mtls}/director/graphql`);
    expect(cfg.token.token).not.toBe(t.token);
    expect(await status()).toMatchObject({ used: true, expired: false });

    const again = await connector(hub, t.token, CONFIGURATION);
    expect(again.status).toBe(401);
    expect(again.errors?.[0]?.extensions.error_code).toBe(26);
    expect(again.errors?.[0]?.message).toMatch(/already used at/);
  });

  it('made-up, replaced, expired and misplaced tokens are refused, each saying why', async () => {
    const madeUp = await connector(hub, 'x'.repeat(43), CONFIGURATION);
    expect(madeUp.status).toBe(401);
    expect(madeUp.errors?.[0]?.message).toMatch(/not known/);

    const none = await connector(hub, undefined, CONFIGURATION);
    expect(none.status).toBe(401);
    expect(none.errors?.[0]?.message).toMatch(/Connector-Token/);

    const app = await registerApp(hub, '{ name: "replaced" }');
    const old = await requestToken(hub, 'Application', app.id);
    const fresh = await requestToken(hub, 'Application', app.id);
    const replaced = await connector(hub, old.token, CONFIGURATION);
    expect(replaced.status).toBe(401);
    expect(replaced.errors?.[0]?.message).toMatch(/replaced by a newer one/);
    // The pairing token cannot sign; the CSR token cannot configure.
    const misplaced = await connector(hub, fresh.token, SIGN, { csr: 'abc' });
    expect(misplaced.errors?.[0]?.message).toMatch(/is for configuration/);
    const cfg = await connector(hub, fresh.token, CONFIGURATION);
    const csrToken = cfg.data.configuration.token.token as string;
    const wrongWay = await connector(hub, csrToken, CONFIGURATION);
    expect(wrongWay.errors?.[0]?.message).toMatch(/for signCertificateSigningRequest/);

    // Runtime tokens live PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL (1.5 s here).
    const rt = await registerRuntime(hub, '{ name: "edge-expiry" }');
    const t = await requestToken(hub, 'Runtime', rt.id);
    await waitFor('the runtime token to expire', async () => Date.parse(t.expiresAt) < Date.now() - 50, 30_000);
    const expired = await connector(hub, t.token, CONFIGURATION);
    expect(expired.status).toBe(401);
    expect(expired.errors?.[0]?.message).toMatch(/expired at/);
    const status = (await ok(hub, `{ runtime(id: "${rt.id}") { oneTimeToken { used expired } } }`)).runtime.oneTimeToken;
    expect(status).toEqual({ used: false, expired: true });
  });

  it('two concurrent redemptions of one token: exactly one wins', async () => {
    const app = await registerApp(hub, '{ name: "race" }');
    const t = await requestToken(hub, 'Application', app.id);
    const results = await Promise.all(Array.from({ length: 8 }, () => connector(hub, t.token, CONFIGURATION)));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 401)).toHaveLength(7);
  });

  it('a csr token replaced, or signed with twice at once, is refused; pairings arriving together all succeed', async () => {
    const app = await registerApp(hub, '{ name: "csr-races" }');
    // configuration answered the csr token; a newer pairing token replaces it before it is used.
    let cfg = (await connector(hub, (await requestToken(hub, 'Application', app.id)).token, CONFIGURATION)).data.configuration;
    await requestToken(hub, 'Application', app.id);
    const replaced = await connector(hub, cfg.token.token, SIGN, { csr: b64(await csrPem(cfg.certificateSigningRequestInfo.subject, await generateKeys())) });
    expect(replaced.status).toBe(401);
    expect(replaced.errors?.[0]?.message).toMatch(/replaced by a newer one/);

    cfg = (await connector(hub, (await requestToken(hub, 'Application', app.id)).token, CONFIGURATION)).data.configuration;
    const csr = b64(await csrPem(cfg.certificateSigningRequestInfo.subject, await generateKeys()));
    const signings = await Promise.all(Array.from({ length: 6 }, () => connector(hub, cfg.token.token, SIGN, { csr })));
    expect(signings.filter((r) => r.status === 200)).toHaveLength(1);
    expect(signings.filter((r) => r.status === 401).map((r) => r.errors?.[0]?.message)).toEqual(Array.from({ length: 5 }, () => expect.stringMatching(/already used/)));
    // Eight applications paired at once (their writes share transactions): every one succeeds.
    const apps = await Promise.all(Array.from({ length: 8 }, (_, i) => registerApp(hub, `{ name: "together-${i}" }`)));
    const paired = await Promise.all(apps.map((a) => pair(hub, 'Application', a.id)));
    expect(new Set(paired.map((p) => new X509Certificate(p.cert).serialNumber)).size).toBe(8);
    const statuses = await Promise.all(apps.map(async (a) => (await ok(hub, `{ application(id: "${a.id}") { oneTimeToken { used } } }`)).application.oneTimeToken.used));
    expect(statuses).toEqual(Array.from({ length: 8 }, () => true));
  });

  it('refuses a CSR with another subject, a 1024-bit key, a wrong signature, or garbage; the token stays spent', async () => {
    const app = await registerApp(hub, '{ name: "csr-checks" }');
    const csrFor = async () => {
      const cfg = (await connector(hub, (await requestToken(hub, 'Application', app.id)).token, CONFIGURATION)).data.configuration;
      return { token: cfg.token.token as string, subject: cfg.certificateSigningRequestInfo.subject as string };
    };
    let c = await csrFor();
    const otherSubject = await connector(hub, c.token, SIGN, { csr: b64(await csrPem(c.subject.replace(/CN=.*/, 'CN=someone-else'), await generateKeys())) });
    expect(otherSubject.status).toBe(400);
    expect(otherSubject.errors?.[0]?.extensions.error_code).toBe(22);
    expect(otherSubject.errors?.[0]?.message).toMatch(/subject .* is not the subject issued/);
    const reuse = await connector(hub, c.token, SIGN, { csr: b64(await csrPem(c.subject, await generateKeys())) });
    expect(reuse.errors?.[0]?.message).toMatch(/already used/);

    c = await csrFor();
    const weak = await connector(hub, c.token, SIGN, { csr: b64(await csrPem(c.subject, await generateKeys(RSA_1024), RSA_1024)) });
    expect(weak.status).toBe(400);
    expect(weak.errors?.[0]?.message).toMatch(/RSA key has 1024 bits/);

    c = await csrFor();
    // The same request with one byte of its signature changed.
    const pem = await csrPem(c.subject, await generateKeys(RSA_2048), RSA_2048);
    const der = Buffer.from(pem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    der[der.length - 5] = der[der.length - 5]! ^ 0xff;
    const tampered = await connector(hub, c.token, SIGN, { csr: der.toString('base64') });
    expect(tampered.status).toBe(400);
    expect(tampered.errors?.[0]?.message).toMatch(/signature does not verify/);

    for (const garbage of ['not base64 at all!', b64('-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----'), b64('hello'), 'A'.repeat(70_000)]) {
      c = await csrFor();
      const r = await connector(hub, c.token, SIGN, { csr: garbage });
      expect(r.status, garbage.slice(0, 40)).toBe(400);
      expect(r.errors?.[0]?.extensions.error_code).toBe(22);
      expect(r.errors?.[0]?.message).toMatch(/^csr: /);
    }
    const noArg = await connector(hub, c.token, 'mutation { signCertificateSigningRequest { clientCertificate } }');
    expect(noArg.status).toBe(400);
    const aliases = await connector(hub, c.token, `mutation { ${Array.from({ length: 5 }, (_, i) => `a${i}: signCertificateSigningRequest(csr: "x") { clientCertificate }`).join(' ')} }`);
    expect(aliases.status).toBe(400);
    expect(aliases.errors?.[0]?.message).toMatch(/at most 1 mutation/);
  });

  it('a signed certificate chains to the CA, is for client auth, and names the system auth', async () => {
    const app = await registerApp(hub, '{ name: "chain" }');
    const id = await pair(hub, 'Application', app.id);
    const cert = new X509Certificate(id.cert);
    const ca = new X509Certificate(id.ca);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.subject).toContain(`CN=${id.systemAuthId}`);
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.2');
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(89);
    expect(days).toBeLessThanOrEqual(90.01);
    const auths = (await ok(hub, `{ application(id: "${app.id}") { auths { id } } }`)).application.auths;
    expect(auths.map((a: { id: string }) => a.id)).toContain(id.systemAuthId);
  });

  it('over mTLS an application is itself: viewer, CONNECTED, its own data only; identity headers are ignored', async () => {
    const app = await registerApp(hub, '{ name: "mtls-app" }');
    const other = await registerApp(hub, '{ name: "mtls-other" }');
    expect((await ok(hub, `{ application(id: "${app.id}") { status { condition } } }`)).application.status.condition).toBe('INITIAL');
    const id = await pair(hub, 'Application', app.id);
    const call = (query: string, headers: Record<string, string> = {}) => tlsRequest(`${mtls}/director/graphql`, id, { body: { query }, headers });

    const viewer = await call('{ viewer { id type } }', { authorization: `Bearer ${hub.adminToken}`, tenant: 'someone-else', 'x-tenant-id': 'x' });
    expect(viewer.status).toBe(200);
    expect(viewer.body.data.viewer).toEqual({ id: app.id, type: 'APPLICATION' });
    expect((await ok(hub, `{ application(id: "${app.id}") { status { condition } } }`)).application.status.condition).toBe('CONNECTED');

    const own = await call(`mutation { addEventDefinition(applicationID: "${app.id}", in: { name: "order.created" }) { id } }`);
    expect(own.body.errors).toBeUndefined();
    // Compass answers null for an application one may not see, as for an unknown one.
    const foreign = await call(`{ application(id: "${other.id}") { name } }`);
    expect(foreign.body).toEqual({ data: { application: null } });
    const foreignApi = await call(`mutation { addAPIDefinition(applicationID: "${other.id}", in: { name: "x", targetURL: "https://x.example" }) { id } }`);
    expect(foreignApi.body.errors[0].extensions.error_code).toBe(20);
    const change = await call(`mutation { updateApplication(id: "${other.id}", in: { name: "hijacked" }) { id } }`);
    expect(change.body.errors[0].extensions.error_code).toBe(20);
    const register = await call('mutation { registerApplication(in: { name: "sneaky" }) { id } }');
    expect(register.body.errors[0].extensions.error_code).toBe(23);
    const list = await call('{ applications { data { id } } }');
    expect(list.body.data.applications.data.map((a: { id: string }) => a.id)).toEqual([app.id]);
  });

  it('a runtime over mTLS reads applicationsForRuntime and sets its own status, nothing else', async () => {
    const rt = await registerRuntime(hub, '{ name: "edge-mtls" }');
    const otherRt = await registerRuntime(hub, '{ name: "edge-other" }');
    const id = await pair(hub, 'Runtime', rt.id);
    const call = (query: string) => tlsRequest(`${mtls}/director/graphql`, id, { body: { query } });
    const apps = await call(`{ applicationsForRuntime(runtimeID: "${rt.id}") { totalCount } }`);
    expect(apps.body.errors).toBeUndefined();
    const status = await call(`mutation { setRuntimeStatus(id: "${rt.id}", condition: READY) { status { condition } } }`);
    expect(status.body.data.setRuntimeStatus.status.condition).toBe('READY');
    const foreign = await call(`mutation { setRuntimeStatus(id: "${otherRt.id}", condition: READY) { id } }`);
    expect(foreign.body.errors[0].extensions.error_code).toBe(20);
    const eventsUrl = (await ok(hub, `{ runtime(id: "${rt.id}") { eventingConfiguration { defaultURL } } }`)).runtime.eventingConfiguration.defaultURL;
    expect(eventsUrl).toBe(`${mtls}/events/${rt.id}`);
  });

  it('certificates of another CA and self-signed ones fail in the handshake; no certificate neither connects', async () => {
    const app = await registerApp(hub, '{ name: "impostor" }');
    const genuine = await pair(hub, 'Application', app.id);
    const keys = await generateKeys();
    const self = await selfSigned(genuine.subject, keys);
    await expect(tlsRequest(`${mtls}/director/graphql`, { key: await keyPem(keys), cert: self, ca: genuine.ca }, { body: { query: '{ viewer { id } }' } })).rejects.toThrow();
    const otherCaKeys = await generateKeys();
    const otherCa = await selfSigned('CN=Other CA', otherCaKeys, true);
    const foreign = await signedByOtherCa(genuine.subject, keys, otherCaKeys, otherCa);
    await expect(tlsRequest(`${mtls}/director/graphql`, { key: await keyPem(keys), cert: foreign, ca: genuine.ca }, { body: { query: '{ viewer { id } }' } })).rejects.toThrow();
    await expect(tlsRequest(`${mtls}/director/graphql`, { key: undefined as never, cert: undefined as never, ca: genuine.ca }, { body: { query: '{ viewer { id } }' } })).rejects.toThrow();
    // The genuine one still works.
    expect((await tlsRequest(`${mtls}/director/graphql`, genuine, { body: { query: '{ viewer { id } }' } })).body.data.viewer.id).toBe(app.id);
  });

  it('renewal over mTLS: both the old and the new certificate work', async () => {
    const app = await registerApp(hub, '{ name: "renewer" }');
    const old = await pair(hub, 'Application', app.id);
    const cfg = await tlsRequest(`${mtls}/connector/graphql`, old, { body: { query: CONFIGURATION } });
    expect(cfg.status).toBe(200);
    expect(cfg.body.data.configuration.certificateSigningRequestInfo.subject).toBe(old.subject);
    const keys = await generateKeys(RSA_2048);
    const signed = await tlsRequest(`${mtls}/connector/graphql`, old, { body: { query: SIGN, variables: { csr: b64(await csrPem(old.subject, keys, RSA_2048)) } } });
    expect(signed.body.errors).toBeUndefined();
    const renewed: TlsIdentity = { key: await keyPem(keys), cert: unb64(signed.body.data.result.clientCertificate), ca: old.ca };
    expect(new X509Certificate(renewed.cert).serialNumber).not.toBe(new X509Certificate(old.cert).serialNumber);
    for (const id of [old, renewed]) {
      expect((await tlsRequest(`${mtls}/director/graphql`, id, { body: { query: '{ viewer { id } }' } })).body.data.viewer.id).toBe(app.id);
    }
  });

  it('revocation: by the holder, and by an administrator on an open keep-alive connection, stops the certificate at once', async () => {
    const app = await registerApp(hub, '{ name: "revoked" }');
    const a = await pair(hub, 'Application', app.id);
    const b = await pair(hub, 'Application', app.id);
    const viewer = (id: TlsIdentity, agent?: https.Agent) => tlsRequest(`${mtls}/director/graphql`, id, { body: { query: '{ viewer { id } }' }, agent });

    const revoke = await tlsRequest(`${mtls}/connector/graphql`, a, { body: { query: 'mutation { revokeCertificate }' } });
    expect(revoke.body).toEqual({ data: { revokeCertificate: true } });
    const refused = await viewer(a);
    expect(refused.status).toBe(401);
    expect(refused.body.errors[0].message).toMatch(/revoked at .*revoked by its holder/);
    expect((await viewer(b)).status).toBe(200);

    const agent = keepAliveAgent(b);
    try {
      expect((await viewer(b, agent)).status).toBe(200);
      const n = await ok(hub, `mutation { n: revokeApplicationCertificates(id: "${app.id}") }`);
      expect(n.n).toBe(1);
      const after = await viewer(b, agent);
      expect(after.status).toBe(401);
      expect(after.body.errors[0].message).toMatch(/revoked by an administrator/);
      // The connector on the mTLS port refuses it too.
      expect((await tlsRequest(`${mtls}/connector/graphql`, b, { body: { query: CONFIGURATION }, agent })).status).toBe(401);
    } finally {
      agent.destroy();
    }
    // A new pairing works again for the same application.
    const c = await pair(hub, 'Application', app.id);
    expect((await viewer(c)).status).toBe(200);
  });

  it('a revocation whose live event never came is enforced too: the listener asks the revocation list', async () => {
    const app = await registerApp(hub, '{ name: "quietly-revoked" }');
    const id = await pair(hub, 'Application', app.id);
    const agent = keepAliveAgent(id);
    try {
      const viewer = () => tlsRequest(`${mtls}/director/graphql`, id, { body: { query: '{ viewer { id } }' }, agent });
      expect((await viewer()).status).toBe(200);
      // Revoked in the database alone, as by another process whose live event was lost.
      const fingerprint = new X509Certificate(id.cert).fingerprint256;
      await hub.db.query(`UPDATE connector_certificates SET revoked_at = now(), revoked_reason = 'revoked elsewhere' WHERE fingerprint = $1`, [fingerprint]);
      const refused = await waitFor('the next request to be refused', async () => {
        const r = await viewer();
        return r.status === 401 ? r : undefined;
      }, 30_000);
      expect(refused.body.errors[0].message).toMatch(/revoked at .*revoked elsewhere/);
    } finally {
      agent.destroy();
    }
  });

  it('unregistering an application revokes its certificates', async () => {
    const app = await registerApp(hub, '{ name: "leaving" }');
    const id = await pair(hub, 'Application', app.id);
    expect((await tlsRequest(`${mtls}/director/graphql`, id, { body: { query: '{ viewer { id } }' } })).status).toBe(200);
    await ok(hub, `mutation { unregisterApplication(id: "${app.id}") { id } }`);
    const r = await tlsRequest(`${mtls}/director/graphql`, id, { body: { query: '{ viewer { id } }' } });
    expect(r.status).toBe(401);
    expect(r.body.errors[0].message).toMatch(/revoked|no longer registered/);
    await waitFor('the revocation in the audit log', async () => {
      const audit = await hub.api('GET', '/api/v1/audit?filter[name]=audit.connector.certificate.revoked&page[size]=100');
      return JSON.stringify(audit.body).includes('application unregistered');
    }, 30_000);
  });

  it('pairing is an administrator\'s: applications cannot request tokens, BASIC ones cannot be paired, and every issue and use is audited', async () => {
    const app = await registerApp(hub, '{ name: "audited" }');
    const id = await pair(hub, 'Application', app.id);
    const r = await tlsRequest(`${mtls}/director/graphql`, id, { body: { query: `mutation { requestOneTimeTokenForApplication(id: "${app.id}") { token } }` } });
    expect(r.body.errors[0].extensions.error_code).toBe(23);
    const basic = await registerApp(hub, '{ name: "static-erp", integrationLevel: BASIC }');
    const refused = await gql(hub, `mutation { requestOneTimeTokenForApplication(id: "${basic.id}") { token } }`);
    expect(refused.errors?.[0]?.extensions.error_code).toBe(27);
    const names = ['audit.connector.token.issued', 'audit.connector.token.used', 'audit.connector.certificate.issued', 'audit.director.application.one-time-token.issued'];
    await waitFor('issue and use of tokens and certificates in the audit log', async () => {
      for (const name of names) {
        const res = await hub.api('GET', `/api/v1/audit?filter[name]=${name}&page[size]=100`);
        if (!(res.body.data as Array<{ target: { id: string } | null }>).some((e) => e.target?.id === app.id)) return false;
      }
      return true;
    }, 30_000);
    const all = JSON.stringify((await hub.api('GET', '/api/v1/audit?filter[name]=audit.connector.*&page[size]=100')).body);
    expect(all).not.toContain(id.key.slice(40, 80));
  });
});
