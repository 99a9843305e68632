/**
 * The audit log through its public HTTP surface: every change and every denied access leaves a
 * record with who, tenant, what, result, source address and time; a tenant sees only its own;
 * nothing can change or remove a record; deleting a user erases its name.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

interface Entry {
  id: string;
  name: string;
  module: string;
  action: string;
  result: string | null;
  at: string;
  tenant: string | null;
  actor: { id: string | null; username: string | null } | null;
  target: { type: string; id: string | null; name: string | null } | null;
  sourceIp: string | null;
  details: Record<string, unknown> | null;
}

describe.each(dbTargets)('audit log over HTTP on %s', (target) => {
  let hub: TestHub;
  let acmeAdmin: string;
  let betaAdmin: string;
  let auditor: string;
  let nobody: string;
  const ids: Record<string, string> = {};

  /** The records matching `query` once `until` holds for them (the log is written asynchronously). */
  const records = async (query: string, until: (entries: Entry[]) => boolean, token?: string): Promise<Entry[]> => {
    let last: Entry[] = [];
    await expect
      .poll(
        async () => {
          const res = await hub.api('GET', `/api/v1/audit?page[size]=100&${query}`, undefined, token);
          expect(res.status, JSON.stringify(res.body)).toBe(200);
          last = res.body.data as Entry[];
          return until(last);
        },
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    return last;
  };

  const createUser = async (body: Record<string, unknown>, token?: string): Promise<string> => {
    const res = await hub.api('POST', '/api/v1/users', body, token);
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.data.id as string;
  };

  beforeAll(async () => {
    hub = await createTestHub({ target });
    for (const id of ['acme', 'beta']) expect((await hub.api('POST', '/api/v1/tenants', { id, name: id.toUpperCase() })).status).toBe(201);
    ids.acmeAdmin = await createUser({ username: 'acme-admin', password: 'acme-admin-pass', tenant: 'acme', permissions: ['tenant.all'] });
    ids.betaAdmin = await createUser({ username: 'beta-admin', password: 'beta-admin-pass', tenant: 'beta', permissions: ['tenant.all'] });
    ids.auditor = await createUser({ username: 'acme-auditor', password: 'acme-auditor-pass', tenant: 'acme', permissions: ['audit.read'] });
    ids.nobody = await createUser({ username: 'acme-nobody', password: 'acme-nobody-pass', tenant: 'acme' });
    acmeAdmin = await hub.login('acme-admin', 'acme-admin-pass', 'acme');
    betaAdmin = await hub.login('beta-admin', 'beta-admin-pass', 'beta');
    auditor = await hub.login('acme-auditor', 'acme-auditor-pass', 'acme');
    nobody = await hub.login('acme-nobody', 'acme-nobody-pass', 'acme');
  });
  afterAll(async () => hub?.close());

  it('records a change with who, tenant, what, result, source address and time', async () => {
    const before = Date.now();
    const id = await createUser({ username: 'audited-user', password: 'audited-pass-1', permissions: ['flows.read'] }, acmeAdmin);
    const [entry] = await records('filter[name]=audit.iam.user.created&search=audited-user', (e) => e.length === 1, auditor);
    expect(entry).toMatchObject({
      module: 'iam',
      action: 'user.created',
      result: 'success',
      tenant: 'acme',
      actor: { id: ids.acmeAdmin, username: 'acme-admin' },
      target: { type: 'user', id, name: 'audited-user' },
      sourceIp: '127.0.0.1',
      details: { permissions: ['flows.read'] },
    });
    expect(Date.parse(entry!.at)).toBeGreaterThanOrEqual(before - 1_000);
    expect(JSON.stringify(entry)).not.toContain('audited-pass-1');
    const one = await hub.api('GET', `/api/v1/audit/${entry!.id}`, undefined, auditor);
    expect(one.body.data).toEqual(entry);
  });

  it('records logins (successful and failed), logouts and issued tokens', async () => {
    const token = await hub.login('audited-user', 'audited-pass-1', 'acme');
    expect((await hub.api('POST', '/api/v1/login', { username: 'audited-user', password: 'not-the-password', tenant: 'acme' }, null)).status).toBe(401);
    expect((await hub.api('POST', '/api/v1/tokens', { description: 'ci' }, acmeAdmin)).status).toBe(201);
    expect((await hub.api('POST', '/api/v1/logout', undefined, token)).status).toBe(204);
    const entries = await records('filter[user]=audited-user', (e) => e.length >= 3, auditor);
    expect(entries.map((e) => `${e.name}:${e.result}`)).toEqual(expect.arrayContaining(['audit.iam.login:success', 'audit.iam.login:failure', 'audit.iam.logout:success']));
    expect(entries.every((e) => e.tenant === 'acme' && e.sourceIp === '127.0.0.1')).toBe(true);
    await records('filter[name]=audit.iam.token.issued', (e) => e.some((x) => x.actor?.username === 'acme-admin'), auditor);
  });

  it('records every denied access: a missing permission, a bad token, a forbidden tenant switch', async () => {
    expect((await hub.api('GET', '/api/v1/users', undefined, nobody)).status).toBe(403);
    expect((await hub.api('GET', '/api/v1/secrets', undefined, nobody)).status).toBe(403);
    expect((await hub.api('GET', '/api/v1/users', undefined, 'plx_forged-token')).status).toBe(401);
    expect((await hub.api('GET', '/api/v1/users', undefined, acmeAdmin, { tenant: 'beta' })).status).toBe(403);
    const denied = await records('filter[result]=denied&filter[user]=acme-nobody', (e) => e.length >= 2, auditor);
    expect(denied.map((e) => e.name).sort()).toEqual(['audit.iam.denied', 'audit.secrets.denied']);
    expect(denied.find((e) => e.name === 'audit.iam.denied')).toMatchObject({ tenant: 'acme', target: { type: 'route', name: 'GET /api/v1/users' }, details: { permission: 'tenant.users.read' } });
    await records('filter[name]=audit.iam.unauthenticated', (e) => e.some((x) => x.target?.name === 'GET /api/v1/users'));
    await records('filter[name]=audit.iam.denied&filter[user]=acme-admin', (e) => e.some((x) => String(x.details?.reason).includes('another tenant')));
  });

  it('shows a tenant only its own records; the platform admin sees all, or one tenant on request', async () => {
    await createUser({ username: 'beta-user', password: 'beta-user-pass' }, betaAdmin);
    await records('search=beta-user', (e) => e.length >= 1);
    const fromAcme = await hub.api('GET', '/api/v1/audit?page[size]=100&search=beta', undefined, acmeAdmin);
    expect(fromAcme.body.data.filter((e: Entry) => e.tenant !== 'acme')).toEqual([]);
    expect((await hub.api('GET', '/api/v1/audit?filter[tenant]=beta', undefined, acmeAdmin)).body.meta.total).toBe(0);
    const all = await hub.api('GET', '/api/v1/audit?page[size]=100');
    expect(all.body.data.some((e: Entry) => e.tenant === 'beta')).toBe(true);
    expect(all.body.data.some((e: Entry) => e.tenant === 'acme')).toBe(true);
    const betaOnly = await hub.api('GET', '/api/v1/audit?page[size]=100', undefined, undefined, { tenant: 'beta' });
    expect(betaOnly.body.data.length).toBeGreaterThan(0);
    expect(betaOnly.body.data.every((e: Entry) => e.tenant === 'beta')).toBe(true);
    const betaRecord = betaOnly.body.data[0] as Entry;
    expect((await hub.api('GET', `/api/v1/audit/${betaRecord.id}`, undefined, auditor)).status).toBe(404);
    expect((await hub.api('GET', '/api/v1/audit/999999999', undefined, auditor)).status).toBe(404);
  });

  it('pages and filters by name, user and time', async () => {
    const page1 = await hub.api('GET', '/api/v1/audit?page[size]=2&page[number]=1', undefined, auditor);
    const page2 = await hub.api('GET', '/api/v1/audit?page[size]=2&page[number]=2', undefined, auditor);
    expect(page1.body.meta).toMatchObject({ page: 1, perPage: 2 });
    expect(page1.body.meta.totalPages).toBe(Math.ceil(page1.body.meta.total / 2));
    expect(page1.body.data).toHaveLength(2);
    expect(page2.body.data[0].id).not.toBe(page1.body.data[0].id);
    expect(Date.parse(page1.body.data[0].at)).toBeGreaterThanOrEqual(Date.parse(page1.body.data[1].at));
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect((await hub.api('GET', `/api/v1/audit?filter[from]=${encodeURIComponent(future)}`, undefined, auditor)).body.meta.total).toBe(0);
    const past = new Date(Date.now() - 3_600_000).toISOString();
    expect((await hub.api('GET', `/api/v1/audit?filter[to]=${encodeURIComponent(past)}`, undefined, auditor)).body.meta.total).toBe(0);
    const iamOnly = await hub.api('GET', '/api/v1/audit?filter[name]=audit.iam.*&page[size]=100', undefined, auditor);
    expect(iamOnly.body.data.length).toBeGreaterThan(0);
    expect(iamOnly.body.data.every((e: Entry) => e.name.startsWith('audit.iam.'))).toBe(true);
    const byId = await hub.api('GET', `/api/v1/audit?filter[user]=${ids.acmeAdmin}&page[size]=100`, undefined, auditor);
    expect(byId.body.data.length).toBeGreaterThan(0);
    expect(byId.body.data.every((e: Entry) => e.actor?.id === ids.acmeAdmin)).toBe(true);
  });

  it('offers no way to change or remove a record', async () => {
    const [entry] = (await hub.api('GET', '/api/v1/audit?page[size]=1')).body.data as Entry[];
    for (const method of ['PUT', 'PATCH', 'DELETE'] as const) {
      const res = await hub.api(method, `/api/v1/audit/${entry!.id}`, method === 'DELETE' ? undefined : { result: 'success' });
      expect(res.status, method).toBe(404);
    }
    expect((await hub.api('POST', '/api/v1/audit', { name: 'audit.fake.thing' })).status).toBe(404);
    expect((await hub.api('DELETE', '/api/v1/audit')).status).toBe(404);
    expect((await hub.api('GET', `/api/v1/audit/${entry!.id}`)).body.data).toEqual(entry);
  });

  it('erases a deleted user’s name from the records that name it', async () => {
    const id = await createUser({ username: 'leaving-user', password: 'leaving-pass-1' }, acmeAdmin);
    const token = await hub.login('leaving-user', 'leaving-pass-1', 'acme');
    expect((await hub.api('GET', '/api/v1/users', undefined, token)).status).toBe(403);
    await records('filter[user]=leaving-user', (e) => e.length >= 2, auditor);
    expect((await hub.api('DELETE', `/api/v1/users/${id}`, undefined, acmeAdmin)).status).toBe(204);
    const after = await records(`filter[user]=${id}`, (e) => e.length >= 2 && e.every((x) => x.actor?.username === '[deleted user]'), auditor);
    expect(after.map((e) => e.name)).toEqual(expect.arrayContaining(['audit.iam.login', 'audit.iam.denied']));
    const aboutUser = await records('filter[name]=audit.iam.user.*', (e) => e.some((x) => x.name === 'audit.iam.user.deleted' && x.target?.id === id), auditor);
    for (const e of aboutUser.filter((x) => x.target?.id === id)) expect(e.target?.name).toBe('[deleted user]');
    expect((await hub.api('GET', '/api/v1/audit?search=leaving-user', undefined, auditor)).body.meta.total).toBe(0);
    // The one who deleted stays on record.
    expect(aboutUser.find((x) => x.name === 'audit.iam.user.deleted')!.actor).toEqual({ id: ids.acmeAdmin, username: 'acme-admin' });
  });

  it('answers 403 without audit.read and 401 without a valid token', async () => {
    for (const url of ['/api/v1/audit', '/api/v1/audit/1']) {
      expect((await hub.api('GET', url, undefined, nobody)).status).toBe(403);
      expect((await hub.api('GET', url, undefined, 'plx_bad')).status).toBe(401);
    }
  });

  it('answers 400 naming the parameter for bad queries', async () => {
    const cases: [string, string][] = [
      ['/api/v1/audit?filter[from]=yesterday', 'filter[from]'],
      ['/api/v1/audit?page[number]=0', 'page[number]'],
      ['/api/v1/audit?filter[result]=maybe', 'filter[result]'],
      ['/api/v1/audit?filter[bogus]=1', 'filter[bogus]'],
      ['/api/v1/audit?sort=name', 'sort'],
      [`/api/v1/audit?filter[from]=2030-01-02&filter[to]=2030-01-01`, 'filter[from]'],
      [`/api/v1/audit?search=${'x'.repeat(201)}`, 'search'],
      ['/api/v1/audit/abc', 'params.id'],
      ['/api/v1/audit/99999999999999999999', 'params.id'],
    ];
    for (const [url, field] of cases) {
      const res = await hub.api('GET', url, undefined, auditor);
      expect(res.status, url).toBe(400);
      expect(res.body.errors[0].message, url).toContain(field);
    }
  });
});
