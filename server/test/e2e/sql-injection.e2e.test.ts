/**
 * SQL injection through every repository's parameters, from the public surface. Hostile text
 * (quote-breaking, backslash-quote, LIKE wildcards, a comment) goes into every string a caller
 * controls that reaches a repo — names, descriptions, searches, filters, labels, webhook bodies,
 * secrets — twice each, so that on PGlite both the ordinary path and the prepared statement with
 * bound parameters run it; with `standard_conforming_strings` off for the second half on PGlite.
 * Every SQL text the hub sends is recorded: none may hold a caller's value, nothing answers 500,
 * the values come back unchanged, and every table is still there.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db, Queryable } from '../../src/platform/db/index.js';
import { dbTargets } from '../helpers/db.js';
import { gql } from '../helpers/director.js';
import { sampleFlow, waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

/** In every hostile value: a statement text holding it carries a caller's value. */
const MARK = 'zqInj7';
const HOSTILE = [
  `${MARK}'); DROP TABLE flows; --`,
  `${MARK}\\'); DELETE FROM iam_accounts; --`,
  `${MARK}' OR '1'='1`,
  `${MARK}%_\\%`,
  `${MARK}$1 $$ E'\\x00'`,
];
const TABLES = ['flows', 'flow_versions', 'iam_accounts', 'iam_tenants', 'iam_roles', 'iam_tokens', 'secrets', 'audit_records', 'orchestrator_executions', 'orchestrator_step_runs', 'director_applications', 'scheduler_flows', 'tenant_limits', 'components_registry', 'bus_jobs'];

describe.each(dbTargets)('SQL injection through every repository on %s', (target) => {
  let hub: TestHub;
  const statements: string[] = [];

  const recording = (q: Queryable): Queryable => ({
    query: (sql, params) => {
      statements.push(sql);
      return q.query(sql, params);
    },
    exec: (sql) => {
      statements.push(sql);
      return q.exec(sql);
    },
  });

  beforeAll(async () => {
    hub = await createTestHub({
      target,
      wrapDb: (db: Db): Db => ({ ...db, ...recording(db), transaction: (fn) => db.transaction((tx) => fn(recording(tx))) }),
    });
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'victim', name: 'victim' })).status).toBe(201);
  });
  afterAll(async () => {
    await hub?.close();
  });

  /** Every call twice (PGlite: the second runs as a prepared statement), never a 5xx. */
  const twice = async (...args: Parameters<TestHub['api']>): Promise<Awaited<ReturnType<TestHub['api']>>> => {
    await hub.api(...args);
    const res = await hub.api(...args);
    expect(res.status, `${args[0]} ${args[1]} → ${JSON.stringify(res.body)}`).toBeLessThan(500);
    return res;
  };
  const q = (v: string): string => encodeURIComponent(v);

  const attack = async (round: string): Promise<void> => {
    for (const [i, evil] of HOSTILE.entries()) {
      const tag = `${round}${i}`;
      // flows (and the scheduler's and webhooks' tables, through start and a hook call)
      const created = await hub.api('POST', '/api/v1/flows', sampleFlow({ name: `${evil}${tag}`, description: evil }));
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const flowId = created.body.data.id as string;
      expect((await twice('GET', `/api/v1/flows/${flowId}`)).body.data).toMatchObject({ name: `${evil}${tag}`, description: evil });
      expect((await twice('GET', `/api/v1/flows?search=${q(evil + tag)}`)).body.data.map((f: { id: string }) => f.id)).toEqual([flowId]);
      await twice('GET', `/api/v1/flows?filter[status]=${q(evil)}&sort=${q(evil)}`);
      await twice('PATCH', `/api/v1/flows/${flowId}`, { description: `${evil}!` });
      expect((await hub.api('POST', `/api/v1/flows/${flowId}/start`)).status).toBeLessThan(300);
      await waitFor('flow active', async () => (await hub.api('GET', `/api/v1/flows/${flowId}`)).body.data.status === 'active', 30_000);
      const hooked = await hub.api('POST', `/hook/${flowId}?${q(evil)}=${q(evil)}`, { [evil]: evil }, null, { 'x-evil': q(evil) });
      expect(hooked.status, JSON.stringify(hooked.body)).toBeLessThan(300);
      // executions (orchestrator), with the hostile body stored and read back
      const runs = await waitFor(
        'the execution',
        async () => {
          const list = await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}`);
          return list.body.data?.length > 0 ? list.body.data : undefined;
        },
        30_000,
      );
      const run = await twice('GET', `/api/v1/executions/${runs[0].id}`);
      expect(JSON.stringify(run.body.data.steps[0].input)).toContain(JSON.stringify(evil).slice(1, -1));
      await twice('GET', `/api/v1/executions?filter[flowId]=${q(evil)}&filter[status]=${q(evil)}&sort=${q(evil)}`);
      await twice('GET', `/hook/${q(evil)}`);
      await hub.api('POST', `/api/v1/flows/${flowId}/stop`);

      // iam: tenants, users, roles, tokens
      await twice('POST', '/api/v1/tenants', { id: `t${tag}`.toLowerCase(), name: evil });
      expect((await twice('GET', `/api/v1/tenants/t${tag}`.toLowerCase())).body.data?.name).toBe(evil);
      await twice('GET', `/api/v1/tenants?search=${q(evil)}&sort=${q(evil)}`);
      await twice('POST', '/api/v1/users', { username: `u${tag}`, password: `${evil}-password`, tenant: 'victim', permissions: ['secrets.read'] });
      await twice('GET', `/api/v1/users?search=${q(evil)}&filter[tenant]=${q(evil)}&filter[kind]=${q(evil)}`);
      await twice('POST', '/api/v1/login', { username: evil, password: evil, tenant: evil }, null);
      await twice('POST', '/api/v1/roles', { name: evil, permissions: ['secrets.read'] });
      await twice('GET', `/api/v1/roles?search=${q(evil)}`);
      await twice('GET', `/api/v1/tokens?filter[accountId]=${q(evil)}&search=${q(evil)}`);
      await twice('POST', '/api/v1/tokens/introspect', { token: evil });

      // secrets
      const secret = await hub.api('POST', '/api/v1/secrets', { name: `${evil}${tag}`, type: 'apiKey', value: { key: evil, headerName: 'X-Key' } });
      expect(secret.status, JSON.stringify(secret.body)).toBe(201);
      expect((await twice('GET', `/api/v1/secrets?search=${q(evil + tag)}`)).body.data.map((s: { name: string }) => s.name)).toEqual([`${evil}${tag}`]);
      expect((await twice('GET', `/api/v1/secrets/${secret.body.data.id}/raw`)).body.data.value.key).toBe(evil);
      await twice('GET', `/api/v1/secrets?filter[type]=${q(evil)}&sort=${q(evil)}`);

      // audit, components, limits
      await twice('GET', `/api/v1/audit?search=${q(evil)}&filter[name]=${q(evil)}&filter[user]=${q(evil)}&filter[tenant]=${q(evil)}`);
      await twice('GET', `/api/v1/components?search=${q(evil)}`);
      await twice('GET', `/api/v1/components/${q(evil)}`);
      await twice('GET', `/api/v1/tenants/${q(evil)}/limits`);

      // director: names, labels and label queries (GraphQL variables carry the values)
      const reg = await gql(hub, 'mutation($in: ApplicationRegisterInput!) { registerApplication(in: $in) { id name } }', {
        variables: { in: { name: `app-${tag}`.toLowerCase(), description: evil, labels: { evil: [evil], [`k${tag}`]: evil } } },
      });
      expect(JSON.stringify(reg), JSON.stringify(reg)).not.toMatch(/"INTERNAL"|error_code":10\b/);
      for (let k = 0; k < 2; k++) {
        const found = await gql(hub, 'query($f: [LabelFilter!]) { applications(filter: $f) { totalCount data { description } } }', {
          variables: { f: [{ key: 'evil', query: JSON.stringify(`$[*] ? (@ == ${JSON.stringify(evil)})`) }] },
        });
        expect(JSON.stringify(found)).not.toMatch(/error_code":10\b/);
        const byKey = await gql(hub, 'query($f: [LabelFilter!]) { applications(filter: $f) { totalCount } }', { variables: { f: [{ key: evil }] } });
        expect(JSON.stringify(byKey)).not.toMatch(/error_code":10\b/);
      }
    }
  };

  it('keeps every hostile value out of the SQL text, answers no 5xx, and loses no table', async () => {
    await attack('a');
    if (target === 'pglite') {
      // The setting quoted literals relied on: the values must stay out of the SQL text anyway.
      await hub.db.exec('SET standard_conforming_strings = off');
      try {
        await attack('b');
      } finally {
        await hub.db.exec('SET standard_conforming_strings = on');
      }
    }
    const carrying = statements.filter((sql) => sql.includes(MARK));
    expect(carrying, carrying.slice(0, 3).join('\n---\n')).toEqual([]);
    expect(statements.length).toBeGreaterThan(500);
    for (const table of TABLES) {
      const res = await hub.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
      expect(res.rows[0]!.n, table).toBeGreaterThanOrEqual(0);
    }
    expect((await hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM iam_accounts')).rows[0]!.n).toBeGreaterThan(1);
    expect((await hub.db.query<{ n: number }>('SELECT count(*)::int AS n FROM flows')).rows[0]!.n).toBeGreaterThanOrEqual(HOSTILE.length);
  }, 600_000);
});
