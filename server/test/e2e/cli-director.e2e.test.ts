/**
 * `plexus apps …` and `plexus runtimes …`: the real binary against a hub with the Director,
 * applications and runtimes by name, labels and scenarios, a credential shown once, the exit
 * codes of a name taken and an unknown name.
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
    hub = await createTestHub();
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
