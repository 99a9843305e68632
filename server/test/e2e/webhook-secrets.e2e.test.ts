/**
 * Webhook signing secrets live in the secrets module, encrypted; flows refer to them by id
 * (issue 10, item 4). Through the API: no table row holds one in clear, no answer shows one,
 * signatures still verify, a flow's own secret goes with the flow; credential-like settings are
 * refused. And an install from before the change: after the migration and the start-up step its
 * old-format flow still verifies, and its clear secrets are gone from every table.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHub, type Hub } from '../../src/entrypoints/hub.js';
import { signWebhook } from '../../src/modules/webhooks/index.js';
import { createBus, type Bus } from '../../src/platform/bus/index.js';
import { loadConfig } from '../../src/platform/config.js';
import { migrate, readMigrations, type Db, type Queryable } from '../../src/platform/db/index.js';
import { openPglite } from '../../src/platform/db/pglite.db.js';
import { openPostgres } from '../../src/platform/db/postgres.db.js';
import { createLogger } from '../../src/platform/logger.js';
import { dbTargets, dropSchema, type DbTarget } from '../helpers/db.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';
import { TEST_DATABASE_URL } from '../helpers/services.js';

const newSecret = (): string => `whsec_${randomBytes(24).toString('base64')}`;

/** Every row of every table of the schema, as text, that contains `needle`. */
async function rowsContaining(db: Queryable, needle: string): Promise<string[]> {
  const tables = await db.query<{ table_name: string }>(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
  );
  const found: string[] = [];
  for (const { table_name: table } of tables.rows) {
    const res = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${table}" t WHERE strpos(t::text, $1) > 0`, [needle]);
    found.push(...res.rows.map((r) => `${table}: ${r.row.slice(0, 200)}`));
  }
  return found;
}

function signedHeaders(secret: string, body: string, msgId = `msg_${randomUUID()}`): Record<string, string> {
  const ts = Math.floor(Date.now() / 1000);
  return { 'content-type': 'application/json', 'webhook-id': msgId, 'webhook-timestamp': String(ts), 'webhook-signature': signWebhook(secret, msgId, ts, body) };
}

async function post(app: Hub['app'], flowId: string, body: string, headers: Record<string, string>): Promise<{ status: number; body: { data?: { executionId: string }; errors?: Array<{ code: string; message: string }> } }> {
  const res = await app.inject({ method: 'POST', url: `/hook/${flowId}`, payload: body, headers });
  return { status: res.statusCode, body: JSON.parse(res.body) as never };
}

async function waitForSuccess(hub: Pick<TestHub, 'api'>, executionId: string, token?: string): Promise<void> {
  await waitFor(`execution ${executionId} succeeded`, async () => (await hub.api('GET', `/api/v1/executions/${executionId}`, undefined, token)).body?.data?.status === 'succeeded', 20_000);
}

const GRAPH = {
  nodes: [
    { id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } },
    { id: 'write', componentId: 'log', function: 'write', fields: { level: 'debug' } },
  ],
  edges: [{ source: 'receive', target: 'write' }],
};

describe.each(dbTargets)('webhook signing secrets on %s', (target) => {
  let hub: TestHub;
  /** Every answer of the suite, to prove no secret ever comes back. */
  const seen: string[] = [];
  const secrets: string[] = [];
  const call: TestHub['api'] = async (...args) => {
    const res = await hub.api(...args);
    seen.push(JSON.stringify(res.body ?? ''));
    return res;
  };
  const startFlow = async (id: string): Promise<void> => {
    expect((await call('POST', `/api/v1/flows/${id}/start`)).status).toBe(200);
    await waitFor('hook accepting', async () => (await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` })).statusCode === 200);
  };
  const stopFlow = async (id: string): Promise<void> => {
    await call('POST', `/api/v1/flows/${id}/stop`);
    await waitFor('flow inactive', async () => (await call('GET', `/api/v1/flows/${id}`)).body.data.status === 'inactive');
  };

  beforeAll(async () => {
    hub = await createTestHub({ target });
  });
  afterAll(async () => hub?.close());

  it('keeps an inline secret in the secrets module: masked answers, no clear row, signatures verify', async () => {
    const secret = newSecret();
    secrets.push(secret);
    const created = await call('POST', '/api/v1/flows', { name: 'signed', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secret } } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.data.id as string;
    const { secretId } = created.body.data.flowSettings.webhooks as { secretId: string };
    expect(created.body.data.flowSettings.webhooks).toEqual({ auth: 'hmac', secret: '********', secretId: expect.any(String), respond: 'async', timeoutMs: 30000 });

    // The flow's secret shows in the secrets list, owned by the flow, its key masked.
    const stored = await call('GET', `/api/v1/secrets/${secretId}`);
    expect(stored.body.data).toMatchObject({ type: 'apiKey', owner: `flow:${id}`, value: { key: '***' } });

    await startFlow(id);
    const body = JSON.stringify({ order: 1 });
    const ok = await post(hub.app, id, body, signedHeaders(secret, body));
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    await waitForSuccess(hub, ok.body.data!.executionId);
    const forged = await post(hub.app, id, body, signedHeaders(newSecret(), body));
    expect(forged.status).toBe(401);
    expect(forged.body.errors![0]!.code).toBe('INVALID_SIGNATURE');

    for (const url of [`/api/v1/flows/${id}`, '/api/v1/flows', `/api/v1/flows/${id}/versions`, '/api/v1/secrets', `/api/v1/executions?filter[flowId]=${id}`, '/api/v1/audit?page[size]=100']) {
      expect((await call('GET', url)).status, url).toBe(200);
    }
    expect(await rowsContaining(hub.db, secret)).toEqual([]);
    // The tail of a whsec_ secret (its key bytes) is not stored either.
    expect(await rowsContaining(hub.db, secret.slice(10, 30))).toEqual([]);
    await stopFlow(id);
  });

  it('re-seals the flow’s own secret when a PATCH brings a new one; the mask sent back keeps it', async () => {
    const first = newSecret();
    const second = newSecret();
    secrets.push(first, second);
    const created = await call('POST', '/api/v1/flows', { name: 'rotated', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secret: first } } });
    const id = created.body.data.id as string;
    const secretId = created.body.data.flowSettings.webhooks.secretId as string;
    const kept = await call('PATCH', `/api/v1/flows/${id}`, { name: 'rotated again', flowSettings: created.body.data.flowSettings });
    expect(kept.status, JSON.stringify(kept.body)).toBe(200);
    expect(kept.body.data.flowSettings.webhooks.secretId).toBe(secretId);
    const rotated = await call('PATCH', `/api/v1/flows/${id}`, { flowSettings: { webhooks: { ...kept.body.data.flowSettings.webhooks, secret: second } } });
    expect(rotated.status, JSON.stringify(rotated.body)).toBe(200);
    expect(rotated.body.data.flowSettings.webhooks.secretId).toBe(secretId);

    await startFlow(id);
    const body = '{"n":2}';
    expect((await post(hub.app, id, body, signedHeaders(first, body))).status).toBe(401);
    expect((await post(hub.app, id, body, signedHeaders(second, body))).status).toBe(202);
    expect(await rowsContaining(hub.db, second)).toEqual([]);
    await stopFlow(id);
  });

  it('verifies with an apiKey secret the flow names by id, and refuses one that cannot sign', async () => {
    const key = newSecret();
    secrets.push(key);
    const own = await call('POST', '/api/v1/secrets', { name: `partner signing key ${target}`, type: 'apiKey', value: { key } });
    expect(own.status).toBe(201);
    const basic = await call('POST', '/api/v1/secrets', { name: `a password ${target}`, type: 'basic', value: { username: 'u', password: 'p-123456789012345' } });
    const byId = await call('POST', '/api/v1/flows', { name: 'by id', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secretId: own.body.data.id } } });
    expect(byId.status, JSON.stringify(byId.body)).toBe(201);
    const id = byId.body.data.id as string;
    await startFlow(id);
    const body = '{"n":3}';
    expect((await post(hub.app, id, body, signedHeaders(key, body))).status).toBe(202);
    await stopFlow(id);

    for (const [secretId, why] of [
      [basic.body.data.id as string, 'is of type basic'],
      [randomUUID(), 'no secret'],
    ]) {
      const refused = await call('POST', '/api/v1/flows', { name: 'bad ref', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secretId } } });
      expect(refused.status).toBe(400);
      expect(refused.body.errors[0].details.problems).toEqual([expect.stringMatching(new RegExp(`^flowSettings\\.webhooks\\.secretId: .*${why}`))]);
    }
    // Another tenant's secret is as absent as a missing one.
    expect((await call('POST', '/api/v1/tenants', { id: `other-${target}`, name: 'Other' })).status).toBe(201);
    const foreign = await call('POST', '/api/v1/flows', { name: 'foreign ref', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secretId: own.body.data.id } } }, undefined, {
      tenant: `other-${target}`,
    });
    expect(foreign.status).toBe(400);
    expect(foreign.body.errors[0].message).toContain('no secret');

    // Deleting a flow deletes the secret it owns, not one it only names.
    const owned = await call('POST', '/api/v1/flows', { name: 'owned', graph: GRAPH, flowSettings: { webhooks: { auth: 'hmac', secret: newSecret() } } });
    const ownedSecret = owned.body.data.flowSettings.webhooks.secretId as string;
    expect((await call('DELETE', `/api/v1/flows/${owned.body.data.id}`)).status).toBe(204);
    expect((await call('DELETE', `/api/v1/flows/${id}`)).status).toBe(204);
    expect((await call('GET', `/api/v1/secrets/${ownedSecret}`)).status).toBe(404);
    expect((await call('GET', `/api/v1/secrets/${own.body.data.id}`)).status).toBe(200);
  });

  it('refuses credential-like flowSettings, naming them', async () => {
    const res = await call('POST', '/api/v1/flows', {
      name: 'leaky',
      graph: GRAPH,
      flowSettings: { crm: { url: 'https://crm.example', apiKey: 'k-123', nested: [{ client_secret: 's' }] }, uiColor: 'blue', tokenUrl: 'https://idp.example/token' },
    });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].details.problems).toEqual([
      'flowSettings.crm.apiKey: looks like a credential; store it in the secrets module (POST /api/v1/secrets) and refer to it by id',
      'flowSettings.crm.nested[0].client_secret: looks like a credential; store it in the secrets module (POST /api/v1/secrets) and refer to it by id',
    ]);
    expect((await call('POST', '/api/v1/flows', { name: 'fine', graph: GRAPH, flowSettings: { uiColor: 'blue', tokenUrl: 'https://idp.example/token', crm: { secretId: 'x' } } })).status).toBe(201);
  });

  it('never answered with a signing secret', () => {
    const all = seen.join('\n');
    for (const s of secrets) expect(all).not.toContain(s);
  });
});

// ---------------------------------------------------------------------------------------------
// An install from before the change

/** Migrations this change adds: the schema without them is the one an older hub left. */
const NEW_MIGRATIONS = new Set([14, 15, 16, 24]);

async function openUnmigrated(target: DbTarget): Promise<{ db: Db; drop(): Promise<void> }> {
  if (target === 'pglite') {
    const db = await openPglite(undefined);
    return { db, drop: () => db.close() };
  }
  const schema = `t_${randomBytes(6).toString('hex')}`;
  const db = await openPostgres({ url: TEST_DATABASE_URL, poolSize: 5, schema });
  return {
    db,
    async drop() {
      await db.close();
      await dropSchema(schema);
    },
  };
}

describe.each(dbTargets)('an install from before signing secrets moved, on %s', (target) => {
  const flowId = randomUUID();
  const current = newSecret();
  const older = newSecret();
  const legacyPassword = `legacy-${randomUUID()}`;
  let store: { db: Db; drop(): Promise<void> };
  let bus: Bus;
  let hub: Hub;
  let dataDir: string;
  let admin: string;
  const api = async (method: 'GET' | 'POST', url: string, body?: unknown) => {
    const res = await hub.app.inject({ method, url, headers: { authorization: `Bearer ${admin}` }, ...(body === undefined ? {} : { payload: body as object }) });
    return { status: res.statusCode, body: JSON.parse(res.body) as { data: any } };
  };

  beforeAll(async () => {
    store = await openUnmigrated(target);
    await migrate(store.db, readMigrations().filter((m) => !NEW_MIGRATIONS.has(m.id)));
    // What the older hub stored for an active hmac flow on its second version.
    const settings = (secret: string) => ({ webhooks: { auth: 'hmac', secret, respond: 'async', timeoutMs: 30000 }, crm: { password: legacyPassword } });
    const flow = (version: number, secret: string) => ({
      id: flowId,
      tenant: 'default',
      name: 'old signed flow',
      graph: GRAPH,
      status: 'starting',
      owners: [],
      flowSettings: settings(secret),
      version,
      createdAt: new Date().toISOString(),
      updatedAt: new Date().toISOString(),
    });
    const db = store.db;
    await db.query(
      `INSERT INTO flows (id, tenant_id, name, graph, status, flow_settings, version) VALUES ($1, 'default', 'old signed flow', $2::jsonb, 'active', $3::jsonb, 2)`,
      [flowId, JSON.stringify(GRAPH), JSON.stringify(settings(current))],
    );
    for (const [version, secret] of [[1, older], [2, current]] as const) {
      await db.query(`INSERT INTO flow_versions (flow_id, version, name, graph, flow_settings) VALUES ($1, $2, 'old signed flow', $3::jsonb, $4::jsonb)`, [
        flowId,
        version,
        JSON.stringify(GRAPH),
        JSON.stringify(settings(secret)),
      ]);
      await db.query(`INSERT INTO orchestrator_flow_versions (flow_id, version, flow) VALUES ($1, $2, $3::jsonb)`, [flowId, version, JSON.stringify(flow(version, secret))]);
    }
    await db.query(`INSERT INTO orchestrator_flows (flow_id, tenant_id, version, status, runtime, flow) VALUES ($1, 'default', 2, 'active', 'local', $2::jsonb)`, [
      flowId,
      JSON.stringify(flow(2, current)),
    ]);
    await db.query(`INSERT INTO webhook_flows (flow_id, tenant_id, start_node, flow_version, settings, accepting) VALUES ($1, 'default', 'receive', 2, $2::jsonb, true)`, [
      flowId,
      JSON.stringify(settings(current).webhooks),
    ]);
    await db.query(`INSERT INTO bus_dead_letters (id, queue, payload, attempts, error, enqueued_at) VALUES ('dl-1', 'evt.somebody.x', $1, 5, 'gave up', now())`, [
      JSON.stringify({ headers: { name: 'flow.starting', createdAt: new Date().toISOString(), serviceName: 'plexus' }, payload: flow(2, current) }),
    ]);
    expect((await rowsContaining(db, current)).length).toBeGreaterThanOrEqual(6);

    // The new hub starts on that database: the migrations, then the start-up steps.
    await migrate(db);
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-upgrade-'));
    const config = loadConfig({ PLEXUS_DATA_DIR: dataDir, PLEXUS_HTTP_PORT: '0', PLEXUS_GRPC_PORT: '0', PLEXUS_MTLS_PORT: '0', PLEXUS_ADMIN_PASSWORD: TEST_ADMIN_PASSWORD, PLEXUS_LOG_LEVEL: 'silent', PLEXUS_BUS_LEASE: '2s' });
    const logger = createLogger('silent');
    bus = await createBus({ db, serviceName: 'plexus-upgrade', logger, maxAttempts: 5, leaseMs: 2_000 });
    hub = await createHub(config, { db, bus, logger });
    const login = await hub.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
    admin = (JSON.parse(login.body) as { token: string }).token;
  });
  afterAll(async () => {
    await hub?.stop();
    await bus?.close();
    await store?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('still verifies the old-format flow’s signatures, with its current secret only', async () => {
    const body = JSON.stringify({ upgraded: true });
    const ok = await post(hub.app, flowId, body, signedHeaders(current, body));
    expect(ok.status, JSON.stringify(ok.body)).toBe(202);
    await waitForSuccess({ api: (m, u) => api(m as 'GET', u) } as Pick<TestHub, 'api'>, ok.body.data!.executionId);
    expect((await post(hub.app, flowId, body, signedHeaders(older, body))).status).toBe(401);
  });

  it('holds neither secret in clear in any table any more, nor the legacy credential setting in answers', async () => {
    expect(await rowsContaining(store.db, current)).toEqual([]);
    expect(await rowsContaining(store.db, older)).toEqual([]);
    const flow = await api('GET', `/api/v1/flows/${flowId}`);
    expect(flow.body.data.flowSettings).toEqual({
      webhooks: { auth: 'hmac', secret: '********', secretId: expect.any(String), respond: 'async', timeoutMs: 30000 },
      crm: { password: '********' },
    });
    const versions = await api('GET', `/api/v1/flows/${flowId}/versions`);
    const ids = versions.body.data.map((v: { flowSettings: { webhooks: { secretId: string } } }) => v.flowSettings.webhooks.secretId);
    // Each distinct old value became a secret the flow owns.
    expect(ids[0]).toBe(flow.body.data.flowSettings.webhooks.secretId);
    expect(new Set(ids).size).toBe(2);
    const owned = (await api('GET', '/api/v1/secrets?page[size]=100')).body.data.filter((s: { owner: string | null }) => s.owner === `flow:${flowId}`);
    expect(owned).toHaveLength(2);
    expect(JSON.stringify([flow.body, versions.body])).not.toContain(legacyPassword);
  });
});
