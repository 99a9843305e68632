/**
 * The admin CLI as an administrator uses it: the real `plexus` binary, run as a child process
 * against a hub listening on loopback, with a config directory of its own. Login with the
 * password on standard input, apply / diff / prune of flow files, the exit codes scripts rely
 * on, -o json / yaml, executions followed live, secrets, the audit log, a revoked session.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PlexusClient } from '../../src/cli/client.js';
import { cliUser, type CliUser } from '../helpers/cli.js';
import { startSink, type Sink } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';

const ORDERS_YAML = `# the orders flow, as kept in git
name: orders
description: shape incoming orders
graph:
  nodes:
    - id: shape
      componentId: transform
      function: jsonata
      fields:
        expression: '{"order": id}'
    - id: write
      componentId: log
      function: write
      fields:
        level: debug
  edges:
    - source: shape
      target: write
flowSettings:
  webhooks:
    auth: hmac
    secret: whsec_c2lnbmluZy1zZWNyZXQtb2YtdGhlLW9yZGVycw==
`;

const NIGHTLY_JSON = JSON.stringify({ name: 'nightly', cron: '0 3 * * *', graph: { nodes: [{ id: 'tick', componentId: 'log', function: 'write' }] } }, null, 2);

describe('plexus CLI against a running hub', () => {
  let hub: TestHub;
  let url: string;
  let user: CliUser;
  let sink: Sink;
  let dir: string;
  const plexus = (...args: string[]) => user.run(args);

  const flowByName = async (name: string): Promise<any> => {
    const res = await hub.api('GET', `/api/v1/flows?search=${encodeURIComponent(name)}`);
    return (res.body.data as any[]).find((f) => f.name === name);
  };

  beforeAll(async () => {
    hub = await createTestHub();
    url = await hub.listen();
    sink = await startSink();
    user = cliUser();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-flows-'));
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
    await sink?.close();
    user?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a wrong password, stores nothing, and names the problem', async () => {
    const res = await user.run(['login', '--url', url, '--username', 'admin'], { input: 'not-the-password\n' });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain('wrong username or password');
    expect(fs.existsSync(user.sessionFile)).toBe(false);
  });

  it('logs in with the password on standard input and keeps the token readable by the user alone', async () => {
    const res = await user.run(['login', '--url', `${url}/`], { input: `${TEST_ADMIN_PASSWORD}\n` });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain(`Logged in to ${url} as admin (tenant default)`);
    const stat = fs.statSync(user.sessionFile);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(user.sessionFile)).mode & 0o077).toBe(0);
    const session = JSON.parse(fs.readFileSync(user.sessionFile, 'utf8'));
    expect(session).toMatchObject({ url, username: 'admin', tenant: 'default' });
    // The token is kept in the file and never printed.
    expect(session.token).toMatch(/^plx_/);
    expect(res.stdout + res.stderr).not.toContain(session.token);

    const me = await plexus('whoami', '-o', 'json');
    expect(me.code, me.stderr).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ url, username: 'admin', tenant: 'default', permissions: ['all'] });
  });

  it('applies a directory of YAML and JSON flows, then reports them unchanged', async () => {
    fs.writeFileSync(path.join(dir, 'orders.yaml'), ORDERS_YAML);
    fs.writeFileSync(path.join(dir, 'nightly.json'), NIGHTLY_JSON);
    const first = await plexus('flows', 'apply', '-f', dir);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/orders\.yaml\s+orders\s+created/);
    expect(first.stdout).toMatch(/nightly\.json\s+nightly\s+created/);
    expect(first.stderr).toContain('2 created, 0 updated, 0 unchanged, 0 deleted, 0 failed');

    const again = await plexus('flows', 'apply', '-f', dir, '-o', 'json');
    expect(again.code, again.stderr).toBe(0);
    const results = JSON.parse(again.stdout) as Array<{ name: string; action: string }>;
    expect(results.map((r) => [r.name, r.action]).sort()).toEqual([
      ['nightly', 'unchanged'],
      ['orders', 'unchanged'],
    ]);
    // Unchanged means untouched: no new version on the hub.
    expect((await flowByName('orders')).version).toBe(1);
  });

  it('gives flows back as YAML that applies unchanged, and lists them as JSON', async () => {
    const got = await plexus('flows', 'get', 'orders', '-o', 'yaml');
    expect(got.code, got.stderr).toBe(0);
    const flow = YAML.parse(got.stdout);
    expect(flow).toMatchObject({ name: 'orders', status: 'inactive', version: 1 });
    const file = path.join(os.tmpdir(), `plexus-roundtrip-${process.pid}.yaml`);
    fs.writeFileSync(file, got.stdout);
    const back = await plexus('flows', 'apply', '-f', file);
    fs.rmSync(file);
    expect(back.code, back.stderr).toBe(0);
    expect(back.stdout).toMatch(/orders\s+unchanged/);

    const list = await plexus('-o', 'json', 'flows', 'list');
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ name: string }>).map((f) => f.name).sort()).toEqual(['nightly', 'orders']);
  });

  it('diffs a changed file against the hub, then applies the change as a new version', async () => {
    fs.writeFileSync(path.join(dir, 'orders.yaml'), ORDERS_YAML.replace('shape incoming orders', 'shape orders'));
    const diff = await plexus('flows', 'diff', '-f', dir);
    expect(diff.code, diff.stderr).toBe(0);
    expect(diff.stdout).toContain('--- hub/orders');
    expect(diff.stdout).toContain('-description: shape incoming orders');
    expect(diff.stdout).toContain('+description: shape orders');
    expect(diff.stdout).not.toContain('nightly');
    expect(diff.stderr).toContain('0 to create, 1 to update, 1 unchanged');

    const applied = await plexus('flows', 'apply', '-f', dir);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toMatch(/orders\s+updated/);
    expect(applied.stdout).toMatch(/nightly\s+unchanged/);
    expect(await flowByName('orders')).toMatchObject({ description: 'shape orders', version: 2 });
  });

  it('prunes the flows the directory no longer has, and only with --prune', async () => {
    fs.rmSync(path.join(dir, 'nightly.json'));
    const plain = await plexus('flows', 'apply', '-f', dir);
    expect(plain.code, plain.stderr).toBe(0);
    expect(await flowByName('nightly')).toBeDefined();

    const diff = await plexus('flows', 'diff', '-f', dir, '--prune', '-o', 'json');
    expect(JSON.parse(diff.stdout)).toContainEqual(expect.objectContaining({ name: 'nightly', change: 'delete' }));

    const pruned = await plexus('flows', 'apply', '-f', dir, '--prune');
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/nightly\s+deleted/);
    expect(await flowByName('nightly')).toBeUndefined();
    expect(await flowByName('orders')).toBeDefined();
  });

  it("names the file, line and field of every problem the hub finds", async () => {
    const bad = path.join(dir, 'broken.yaml');
    fs.writeFileSync(bad, 'name: broken\ngraph:\n  nodes:\n    - id: a\n      componentId: no-such-component\n      function: run\n    - id: b\n      componentId: log\n      function: write\n  edges:\n    - source: a\n      target: c\n');
    const res = await plexus('flows', 'apply', '-f', bad);
    fs.rmSync(bad);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(new RegExp(`broken\\.yaml:4:\\d+: graph\\.nodes\\[0\\] \\("a"\\): unknown component`));
    expect(res.stderr).toMatch(/broken\.yaml:12:\d+: graph\.edges\[0\]\.target: "c" is not a node of this flow/);
    expect(res.stdout).toMatch(/broken\s+failed/);
    expect(await flowByName('broken')).toBeUndefined();
  });

  it('reports a file that is not YAML with its line, before calling the hub', async () => {
    const bad = path.join(os.tmpdir(), `plexus-bad-${process.pid}.yaml`);
    fs.writeFileSync(bad, 'name: x\ngraph: [1,\n  nodes: 2\n');
    const res = await plexus('flows', 'apply', '-f', bad);
    fs.rmSync(bad);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`${bad}:`);
  });

  it('exits 2 for usage errors, 3 for what does not exist, 4 for a conflict', async () => {
    const usage = await plexus('flows', 'list', '--status', 'sleeping');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('sleeping');
    expect((await plexus('flows', 'frobnicate')).code).toBe(2);
    expect((await plexus('flows', 'apply')).code).toBe(2);

    const missing = await plexus('flows', 'get', 'no-such-flow');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('not found');
    expect((await plexus('executions', 'get', 'no-such-execution')).code).toBe(3);

    const started = await plexus('flows', 'start', 'orders', '--wait');
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toMatch(/orders\s+\S+\s+active/);
    fs.writeFileSync(path.join(dir, 'orders.yaml'), ORDERS_YAML.replace('shape incoming orders', 'changed while active'));
    const conflict = await plexus('flows', 'apply', '-f', dir);
    expect(conflict.code).toBe(4);
    expect(conflict.stderr).toContain('--restart');
    expect((await plexus('flows', 'delete', 'orders')).code).toBe(4);

    const restarted = await plexus('flows', 'apply', '-f', dir, '--restart');
    expect(restarted.code, restarted.stderr).toBe(0);
    expect(restarted.stdout).toMatch(/orders\s+updated \(restarted\)/);
    expect(await flowByName('orders')).toMatchObject({ description: 'changed while active' });
  });

  it('follows executions live and retries a failed one', async () => {
    const failing = path.join(dir, 'failing.yaml');
    sink.respond(400, { error: 'refused' });
    fs.writeFileSync(failing, `name: failing\ngraph:\n  nodes:\n    - id: send\n      componentId: http-request\n      function: request\n      fields:\n        method: POST\n        url: ${sink.url}\n`);
    expect((await plexus('flows', 'apply', '-f', failing)).code).toBe(0);
    expect((await plexus('flows', 'start', 'failing', '--wait')).code).toBe(0);
    const flow = await flowByName('failing');
    const hook = await fetch(`${url}/hook/${flow.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":1}' });
    const { executionId } = ((await hook.json()) as { data: { executionId: string } }).data;

    const watched = await plexus('executions', 'watch', executionId);
    expect(watched.code).toBe(1);
    expect(watched.stdout).toMatch(/send\s+0\s+failed/);
    expect(watched.stderr).toContain(`execution ${executionId} failed`);

    const listed = await plexus('executions', 'list', '--flow', 'failing', '--status', 'failed', '-o', 'json');
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Array<{ id: string }>).map((x) => x.id)).toEqual([executionId]);
    const later = await plexus('executions', 'list', '--flow', 'failing', '--from', new Date(Date.now() + 3_600_000).toISOString(), '-o', 'json');
    expect(later.code, later.stderr).toBe(0);
    expect(JSON.parse(later.stdout)).toEqual([]);
    const badTime = await plexus('executions', 'list', '--from', 'yesterday');
    expect(badTime.code).toBe(1);
    expect(badTime.stderr).toContain('filter[from]');

    sink.respond(200, { ok: true });
    const retried = await plexus('executions', 'retry', executionId, '--watch');
    expect(retried.code, retried.stderr).toBe(0);
    expect(retried.stdout).toMatch(/send\s+0\s+succeeded/);
    expect(retried.stdout).toContain(`execution ${executionId} succeeded`);
  });

  it('reads the hub’s execution event stream: an execution it names, once subscribed', async () => {
    const { token } = JSON.parse(fs.readFileSync(user.sessionFile, 'utf8')) as { token: string };
    const client = new PlexusClient({ url, token });
    const flow = await flowByName('failing');
    const abort = new AbortController();
    try {
      const events = await client.executionEvents({ flowId: flow.id }, abort.signal);
      expect(events, 'the hub has no execution event stream').toBeDefined();
      const it = events![Symbol.asyncIterator]();
      expect((await it.next()).value).toMatchObject({ event: 'ready' });
      const hook = await fetch(`${url}/hook/${flow.id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"id":2}' });
      const { executionId } = ((await hook.json()) as { data: { executionId: string } }).data;
      for (;;) {
        const next = await it.next();
        expect(next.done).toBe(false);
        if (next.value!.event === 'execution' && (JSON.parse(next.value!.data) as { id: string }).id === executionId) break;
      }
    } finally {
      abort.abort();
    }
  });

  it('stores secrets from standard input and shows them masked', async () => {
    const created = await user.run(['secrets', 'create', 'crm-login', '--type', 'basic', '-f', '-'], { input: 'username: crm\npassword: plaintext-pw-123\n' });
    expect(created.code, created.stderr).toBe(0);
    const got = await plexus('secrets', 'get', 'crm-login', '-o', 'json');
    expect(JSON.parse(got.stdout)).toMatchObject({ name: 'crm-login', type: 'basic', value: { username: 'crm', password: '***' } });
    const list = await plexus('secrets', 'list');
    expect(list.stdout).toMatch(/crm-login\s+\S+\s+basic/);
    expect(list.stdout).not.toContain('plaintext-pw-123');

    const invalid = await user.run(['secrets', 'create', 'half', '--type', 'basic', '-f', '-'], { input: 'username: only\n' });
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toContain('value.password');
    expect((await user.run(['secrets', 'create', 'crm-login', '--type', 'basic', '-f', '-'], { input: 'username: a\npassword: b\n' })).code).toBe(4);
  });

  it('lists the audit log with filters as YAML', async () => {
    const res = await plexus('audit', 'list', '--name', 'audit.secrets.*', '-o', 'yaml');
    expect(res.code, res.stderr).toBe(0);
    const records = YAML.parse(res.stdout) as Array<{ name: string; target: { name: string } }>;
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((r) => r.name.startsWith('audit.secrets.'))).toBe(true);
    expect(records.map((r) => r.name)).toContain('audit.secrets.secret.created');
  });

  it('completes commands and option values in bash', async () => {
    const script = (await plexus('completion', 'bash')).stdout;
    const complete = (words: string[]): string =>
      execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _plexus; echo "\${COMPREPLY[*]}"`], { encoding: 'utf8' }).trim();
    expect(complete(['plexus', 'fl'])).toBe('flows');
    expect(complete(['plexus', 'flows', ''])).toContain('apply');
    expect(complete(['plexus', '-o', 'json', 'flows', 'list', '--status', 'ac'])).toBe('active');
    expect(complete(['plexus', 'flows', 'list', '-o', 'y'])).toBe('yaml');
    expect((await plexus('completion', 'zsh')).stdout).toContain('#compdef plexus');
  });

  it('names an unreachable hub, and never sends the stored token to another one', async () => {
    // A port that was free a moment ago: nothing listens there.
    const closed = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as net.AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const nowhere = `http://127.0.0.1:${closed}`;
    const down = await user.run(['flows', 'list'], { env: { PLEXUS_URL: nowhere, PLEXUS_TOKEN: 'plx_unused' } });
    expect(down.code).toBe(1);
    expect(down.stderr).toContain(`cannot reach ${nowhere}: ECONNREFUSED`);
    const elsewhere = await user.run(['flows', 'list'], { env: { PLEXUS_URL: nowhere } });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain(`the session is for ${url}`);
  });

  it('tells a user whose session was revoked to log in again', async () => {
    const { token } = JSON.parse(fs.readFileSync(user.sessionFile, 'utf8')) as { token: string };
    expect((await hub.api('POST', '/api/v1/logout', undefined, token)).status).toBe(204);
    const res = await plexus('flows', 'list');
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`your session at ${url} has expired or was revoked: run plexus login --url ${url}`);
  });

  it('logs out by revoking the token on the hub and removing the session', async () => {
    const login = await user.run(['login', '--url', url], { input: `${TEST_ADMIN_PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
    const { token } = JSON.parse(fs.readFileSync(user.sessionFile, 'utf8')) as { token: string };
    const out = await plexus('logout');
    expect(out.code, out.stderr).toBe(0);
    expect(fs.existsSync(user.sessionFile)).toBe(false);
    expect((await hub.api('GET', '/api/v1/me', undefined, token)).status).toBe(401);
    const after = await plexus('whoami');
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('not logged in');
  });
  it('logs in to an account of another tenant with --tenant', async () => {
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
    const created = await hub.api('POST', '/api/v1/users', { username: 'ops', password: 'ops-password-1', tenant: 'acme', permissions: ['flows.read'] });
    expect(created.status, JSON.stringify(created.body)).toBe(201);

    const wrongTenant = await user.run(['login', '--url', url, '--username', 'ops'], { input: 'ops-password-1\n' });
    expect(wrongTenant.code).toBe(1);
    expect(wrongTenant.stderr).toContain('wrong username or password');

    const login = await user.run(['login', '--url', url, '--username', 'ops', '--tenant', 'acme'], { input: 'ops-password-1\n' });
    expect(login.code, login.stderr).toBe(0);
    expect(login.stdout).toContain('as ops (tenant acme)');
    const me = await plexus('whoami', '-o', 'json');
    expect(JSON.parse(me.stdout)).toMatchObject({ username: 'ops', tenant: 'acme', permissions: ['flows.read'] });
    // Its flows are acme's: none of default's.
    expect(JSON.parse((await plexus('flows', 'list', '-o', 'json')).stdout)).toEqual([]);
  });
  it('tells a user whose session expired to log in again', async () => {
    const login = await user.run(['login', '--url', url], { input: `${TEST_ADMIN_PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
    const { token } = JSON.parse(fs.readFileSync(user.sessionFile, 'utf8')) as { token: string };
    // Time passing, without the wait: the session's expiry moves into the past.
    const hash = createHash('sha256').update(token).digest('hex');
    await hub.testDb.db.query("UPDATE iam_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1", [hash]);
    await waitFor('the hub to refuse the expired token', async () => (await hub.api('GET', '/api/v1/me', undefined, token)).status === 401);
    const res = await plexus('executions', 'list');
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`your session at ${url} has expired or was revoked: run plexus login --url ${url}`);
  });
});
