/**
 * `plexus apps …` and `plexus runtimes …`: the real binary against a hub with the Director,
 * applications and runtimes by name, labels and scenarios, a credential shown once, one-time
 * Connector tokens (`pair`, redeemed at the Connector), the exit codes of a name taken and an
 * unknown name.
 */
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliUser, type CliUser } from '../helpers/cli.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';

describe('plexus apps and runtimes', () => {
  let hub: TestHub;
  let user: CliUser;
  let url: string;
  const plexus = (...args: string[]) => user.run(args);

  beforeAll(async () => {
    // The Connector's mTLS port on any free port: 8443 may be taken on a shared machine.
    hub = await createTestHub({ env: { PLEXUS_MTLS_PORT: '0' } });
    url = await hub.listen();
    user = cliUser();
    const login = await user.run(['login', '--url', url], { input: `${TEST_ADMIN_PASSWORD}\n` });
    expect(login.code, login.stderr).toBe(0);
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
    user?.cleanup();
  });

  it('registers an application with labels, finds it by name and scenario, refuses the name twice', async () => {
    const reg = await plexus('apps', 'register', 'shop', '--description', 'the web shop', '--label', 'scenarios=["DEFAULT"]', '--label', 'team=web');
    expect(reg.code, reg.stderr).toBe(0);
    expect(reg.stdout).toMatch(/registered application shop \(/);
    const again = await plexus('apps', 'register', 'shop');
    expect(again.code).toBe(4);
    // Named as the hub names it, with its message.
    expect(again.stderr).toMatch(/^plexus: ALREADY_EXISTS: an application named shop already exists/m);

    const got = await plexus('apps', 'get', 'shop', '-o', 'yaml');
    expect(got.code, got.stderr).toBe(0);
    expect(YAML.parse(got.stdout)).toMatchObject({ name: 'shop', description: 'the web shop', integrationLevel: 'APPLICATION', labels: { team: 'web', scenarios: ['DEFAULT'] } });

    const inScenario = await plexus('apps', 'list', '--scenario', 'DEFAULT', '-o', 'json');
    expect((JSON.parse(inScenario.stdout) as Array<{ name: string }>).map((a) => a.name)).toEqual(['shop']);
    const byLabel = await plexus('apps', 'list', '--label', 'team=ops', '-o', 'json');
    expect(JSON.parse(byLabel.stdout)).toEqual([]);

    expect((await plexus('apps', 'label', 'shop', 'tier=gold')).code).toBe(0);
    const labelled = await plexus('apps', 'list', '--label', 'tier=gold');
    expect(labelled.stdout).toMatch(/shop\s+\S+\s+INITIAL\s+APPLICATION\s+DEFAULT/);
    expect((await plexus('apps', 'unlabel', 'shop', 'tier')).code).toBe(0);
  });

  it('registers a runtime and issues a credential for it once', async () => {
    const reg = await plexus('runtimes', 'register', 'edge-1', '--label', 'runtime/event_service_url=https://edge.example/events');
    expect(reg.code, reg.stderr).toBe(0);
    const list = await plexus('runtimes', 'list');
    expect(list.stdout).toMatch(/edge-1\s+\S+\s+INITIAL\s+DEFAULT\s+https:\/\/edge\.example\/events/);
    const cred = await plexus('runtimes', 'credentials', 'edge-1', '-o', 'json');
    expect(cred.code, cred.stderr).toBe(0);
    const token = (JSON.parse(cred.stdout) as { auth: { credential: { token: string } } }).auth.credential.token;
    expect(token).toMatch(/^plx_/);
    // The token stands for the runtime: it sees itself among the runtimes.
    const seen = await user.run(['runtimes', 'list', '-o', 'json'], { env: { PLEXUS_TOKEN: token, PLEXUS_URL: url } });
    expect(seen.code, seen.stderr).toBe(0);
    expect((JSON.parse(seen.stdout) as Array<{ name: string }>).map((r) => r.name)).toEqual(['edge-1']);
  });

  it('pairs an application and a runtime: a one-time token the Connector takes once, its URL and expiry', async () => {
    const configuration = async (token: string): Promise<{ ok: boolean; message?: string }> => {
      const res = await hub.api('POST', '/connector/graphql', { query: '{ configuration { token { token } } }' }, null, { 'connector-token': token });
      const errors = res.body?.errors as Array<{ message: string }> | undefined;
      return errors?.length ? { ok: false, message: errors[0]!.message } : { ok: !!res.body?.data?.configuration?.token?.token };
    };
    const paired = await plexus('apps', 'pair', 'shop');
    expect(paired.code, paired.stderr).toBe(0);
    const lines = paired.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^one-time token for application shop \([0-9a-f-]{36}\), shown once:$/);
    const token = lines[1]!;
    expect(token).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    expect(lines[2]).toBe(`connector URL: ${url}/connector/graphql (send the token in the Connector-Token header)`);
    // Five minutes by default (PLEXUS_CONNECTOR_APP_TOKEN_TTL).
    expect(lines[3]).toMatch(/^expires: \S+ \(in about [45] min\)$/);
    expect(lines[4]).toBe('any earlier unused token for shop no longer works');

    // A second token stops the first, unused one; the second is taken once.
    const again = await plexus('apps', 'pair', 'shop', '-o', 'json');
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as { token: string; connectorURL: string; expiresAt: string; used: boolean };
    expect(second).toMatchObject({ connectorURL: `${url}/connector/graphql`, used: false });
    expect(second.token).not.toBe(token);
    expect((await configuration(token)).ok).toBe(false);
    expect(await configuration(second.token)).toEqual({ ok: true });
    expect((await configuration(second.token)).ok).toBe(false);

    const runtime = await plexus('runtimes', 'pair', 'edge-1', '-o', 'yaml');
    expect(runtime.code, runtime.stderr).toBe(0);
    const r = YAML.parse(runtime.stdout) as { token: string; expiresAt: string };
    // Sixty minutes by default (PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL).
    expect(Date.parse(r.expiresAt) - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(await configuration(r.token)).toEqual({ ok: true });

    const missing = await plexus('runtimes', 'pair', 'nowhere');
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/runtime "nowhere" not found/);
    expect((await plexus('apps', 'register', 'static', '--level', 'BASIC')).code).toBe(0);
    const basic = await plexus('apps', 'pair', 'static');
    expect(basic.code).not.toBe(0);
    expect(basic.stderr).toMatch(/^plexus: INVALID_STATE: .*BASIC/m);
    expect((await plexus('apps', 'unregister', 'static')).code).toBe(0);
  });

  it('adds and removes scenarios, and sets a runtime status', async () => {
    const added = await plexus('scenarios', 'add', 'SHOP', 'ERP', '-o', 'json');
    expect(added.code, added.stderr).toBe(0);
    expect(JSON.parse(added.stdout)).toEqual([{ name: 'DEFAULT' }, { name: 'SHOP' }, { name: 'ERP' }]);
    expect((await plexus('runtimes', 'label', 'edge-1', 'scenarios=["SHOP"]')).code).toBe(0);
    // A scenario still in use stays: the Director's refusal, by name, exit 1 (invalid input).
    const inUse = await plexus('scenarios', 'remove', 'SHOP');
    expect(inUse.code).not.toBe(0);
    expect(inUse.stderr).toMatch(/^plexus: [A-Z_]+: /m);
    const removed = await plexus('scenarios', 'remove', 'ERP');
    expect(removed.code, removed.stderr).toBe(0);
    expect((await plexus('scenarios', 'list')).stdout).toMatch(/^SCENARIO\s*\nDEFAULT\s*\nSHOP\s*$/);
    expect((await plexus('scenarios', 'remove', 'NOPE')).code).toBe(3);

    expect((await plexus('runtimes', 'status', 'edge-1', 'SLEEPING')).code).toBe(2);
    const ready = await plexus('runtimes', 'status', 'edge-1', 'READY');
    expect(ready.code, ready.stderr).toBe(0);
    expect(ready.stdout).toContain('edge-1: READY');
    expect((await plexus('runtimes', 'label', 'edge-1', 'scenarios=["DEFAULT"]')).code).toBe(0);
  });

  it('exits 3 for an unknown name and unregisters by name', async () => {
    expect((await plexus('apps', 'get', 'no-such-app')).code).toBe(3);
    expect((await plexus('runtimes', 'get', 'no-such-runtime')).code).toBe(3);
    expect((await plexus('apps', 'unregister', 'shop')).code).toBe(0);
    expect((await plexus('runtimes', 'unregister', 'edge-1')).code).toBe(0);
    expect(JSON.parse((await plexus('apps', 'list', '-o', 'json')).stdout)).toEqual([]);
  });
});
