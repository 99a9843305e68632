/**
 * The Connector on two hub processes sharing one PostgreSQL database and one NATS: they sign with
 * the one CA stored in the database, a token redeemed on both at once is won by exactly one, and a
 * certificate revoked on one process is refused by the other within 1 s — on a keep-alive
 * connection opened before the revocation — and after that process restarts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '../../src/entrypoints/hub.js';
import { b64, csrPem, generateKeys, keepAliveAgent, keyPem, tlsRequest, unb64, type TlsIdentity } from '../helpers/connector.js';
import { TestCluster } from '../helpers/cluster.js';
import { openTestDb, type TestDb } from '../helpers/db.js';
import { TEST_ADMIN_PASSWORD } from '../helpers/hub.js';

const CONFIGURATION = '{ configuration { token { token } certificateSigningRequestInfo { subject } } }';
const SIGN = 'mutation($csr: String!) { result: signCertificateSigningRequest(csr: $csr) { clientCertificate caCertificate } }';

async function post(hub: Hub, url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const res = await hub.app.inject({ method: 'POST', url, headers, payload: body as object });
  return { status: res.statusCode, body: JSON.parse(res.body) };
}

describe('connector on two processes (PostgreSQL + NATS)', () => {
  let testDb: TestDb;
  const cluster = new TestCluster(() => testDb, 'connector-two');
  const hubs = cluster.hubs;
  let adminToken: string;

  const startHub = (): Promise<Hub> => cluster.start({ listen: true });
  const stopHub = (hub: Hub): Promise<void> => cluster.stop(hub);

  async function director(hub: Hub, query: string): Promise<any> {
    const r = await post(hub, '/director/graphql', { query }, { authorization: `Bearer ${adminToken}` });
    if (r.body.errors) throw new Error(JSON.stringify(r.body.errors));
    return r.body.data;
  }

  async function pairOn(issuer: Hub, signer: Hub, appId: string): Promise<TlsIdentity> {
    const { result } = await director(issuer, `mutation { result: requestOneTimeTokenForApplication(id: "${appId}") { token } }`);
    const cfg = await post(signer, '/connector/graphql', { query: CONFIGURATION }, { 'connector-token': result.token });
    const keys = await generateKeys();
    const subject = cfg.body.data.configuration.certificateSigningRequestInfo.subject as string;
    const signed = await post(signer, '/connector/graphql', { query: SIGN, variables: { csr: b64(await csrPem(subject, keys)) } }, { 'connector-token': cfg.body.data.configuration.token.token });
    return { key: await keyPem(keys), cert: unb64(signed.body.data.result.clientCertificate), ca: unb64(signed.body.data.result.caCertificate) };
  }

  beforeAll(async () => {
    testDb = await openTestDb('postgres');
    // The first creates the CA in the database; the second finds it there.
    await startHub();
    await startHub();
    const login = await post(hubs[0]!, '/api/v1/login', { username: 'admin', password: TEST_ADMIN_PASSWORD }, {});
    adminToken = login.body.token;
  }, 120_000);

  afterAll(async () => {
    await cluster.close();
    await testDb?.drop();
  });

  it('both processes sign with the one CA of the database; a certificate from one works on the other', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const app = (await director(a, 'mutation { r: registerApplication(in: { name: "two-ca" }) { id } }')).r;
    const id = await pairOn(a, b, app.id);
    for (const hub of [a, b]) {
      const r = await tlsRequest(`${hub.mtlsUrl()}/director/graphql`, id, { body: { query: '{ viewer { id } }' } });
      expect(r.body.data.viewer.id).toBe(app.id);
    }
    const other = await pairOn(b, a, app.id);
    expect(unb64(b64(other.ca))).toBe(id.ca);
  });

  it('a token redeemed on both processes at once is won by exactly one', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const app = (await director(a, 'mutation { r: registerApplication(in: { name: "two-race" }) { id } }')).r;
    for (let round = 0; round < 3; round++) {
      const { result } = await director(a, `mutation { result: requestOneTimeTokenForApplication(id: "${app.id}") { token } }`);
      const tries = await Promise.all([a, b, a, b, a, b].map((h) => post(h, '/connector/graphql', { query: CONFIGURATION }, { 'connector-token': result.token })));
      expect(tries.filter((t) => t.status === 200)).toHaveLength(1);
    }
  });

  it('revoked on one process, refused by the other within 1 s — on an open connection, and after a restart', async () => {
    const [a, b] = hubs as [Hub, Hub];
    const app = (await director(a, 'mutation { r: registerApplication(in: { name: "two-revoke" }) { id } }')).r;
    const id = await pairOn(a, a, app.id);
    const agent = keepAliveAgent(id);
    const viewerOnB = () => tlsRequest(`${b.mtlsUrl()}/director/graphql`, id, { body: { query: '{ viewer { id } }' }, agent });
    try {
      // B has read (and cached) the certificate's identity on this connection.
      expect((await viewerOnB()).status).toBe(200);
      expect((await viewerOnB()).status).toBe(200);
      await director(a, `mutation { n: revokeApplicationCertificates(id: "${app.id}") }`);
      const revokedAt = Date.now();
      let status = 200;
      while (status === 200 && Date.now() - revokedAt < 5_000) status = (await viewerOnB()).status;
      const tookMs = Date.now() - revokedAt;
      expect(status).toBe(401);
      expect(tookMs).toBeLessThan(1_000);
    } finally {
      agent.destroy();
    }
    // The revocation list is in the database: a restarted process knows it.
    await stopHub(b);
    const c = await startHub();
    const r = await tlsRequest(`${c.mtlsUrl()}/director/graphql`, id, { body: { query: '{ viewer { id } }' } });
    expect(r.status).toBe(401);
    expect(r.body.errors[0].message).toMatch(/revoked/);
  });
});
