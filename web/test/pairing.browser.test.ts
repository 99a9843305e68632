/**
 * Pairing and workers in a real browser (Debian's chromium, playwright-core) against a real hub
 * on a fresh embedded database: the "Pair" button of an application and of a runtime (one-time
 * token with its connector URL, copy buttons, countdown, "expired", used or not, replaced by a
 * newer one — checked against the Connector itself), and the Workers screen (an enrolment secret
 * created and shown once, redeemed by an SDK worker that then appears with its components,
 * in-flight deliveries and heartbeat). Every screen is screenshotted to web/test-results/ and
 * checked with axe-core (no serious or critical violations), at 1280 px and at 390 px.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from '../../server/src/worker-sdk/index.js';
import { createAndStart, trigger, waitForExecution } from '../../server/test/helpers/engine.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../../server/test/helpers/hub.js';
import { startSdkWorker, tempDir } from '../../server/test/helpers/workers.js';
import { documentWidth, launchBrowser, screenshot, seriousViolations, type Browser } from './browser.js';

const DIST_INDEX = fileURLToPath(new URL('../dist/index.html', import.meta.url));
/** Generous for a busy two-core machine; nothing waits this long when things work. */
const WAIT_MS = 30_000;
/** Runtime tokens live this long here, so the test can watch one expire on the screen. */
const RUNTIME_TOKEN_TTL_MS = 20_000;
const CONFIGURATION = '{ configuration { token { token } certificateSigningRequestInfo { subject } } }';

describe('pairing and workers in the cockpit', () => {
  let hub: TestHub;
  let base: string;
  let browser: Browser;
  let page: Page;
  let appId = '';
  let runtimeId = '';
  const workers: Worker[] = [];
  const dir = tempDir('plexus-cockpit-worker-');

  const checkScreen = async (name: string): Promise<void> => {
    await screenshot(page, name);
    const serious = await seriousViolations(page);
    expect(serious, `axe on ${name}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as hub.api's bodies are
  const director = async (query: string, variables: Record<string, unknown> = {}): Promise<any> => {
    const res = await hub.api('POST', '/director/graphql', { query, variables });
    expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
    return res.body.data;
  };

  /** What an application's agent does with the token: the Connector's `configuration`. */
  const redeem = async (token: string): Promise<{ ok: boolean; message?: string }> => {
    const res = await hub.api('POST', '/connector/graphql', { query: CONFIGURATION }, null, { 'connector-token': token });
    const errors = res.body?.errors as Array<{ message: string }> | undefined;
    return errors?.length ? { ok: false, message: errors[0]!.message } : { ok: !!res.body?.data?.configuration?.token?.token };
  };

  const shownToken = async (): Promise<string> => {
    const code = page.getByLabel('One-time token', { exact: true });
    await expect.poll(() => code.textContent(), { timeout: WAIT_MS }).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    return (await code.textContent())!;
  };

  beforeAll(async () => {
    if (!fs.existsSync(DIST_INDEX)) throw new Error('web/dist is not built: run `npm run build -w web` (npm ci and `npm test -w web` do)');
    hub = await createTestHub({ target: 'pglite', env: { PLEXUS_MTLS_PORT: '0', PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL: `${RUNTIME_TOKEN_TTL_MS}ms` } });
    base = await hub.listen();
    browser = await launchBrowser();
    page = browser.page;
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    appId = (await director('mutation { registerApplication(in: {name: "shop", integrationLevel: APPLICATION}) { id } }')).registerApplication.id;
    runtimeId = (await director('mutation { registerRuntime(in: {name: "edge-1"}) { id } }')).registerRuntime.id;
  });

  afterAll(async () => {
    for (const w of workers) await w.stop().catch(() => undefined);
    await browser?.close();
    await hub?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('pairs an application: the token, its connector URL and countdown, and whether it was used', async () => {
    await page.goto(`${base}/applications/${appId}`);
    await page.waitForURL(/\/sign-in\?next=/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(TEST_ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Application shop' }).waitFor();
    const pairing = page.getByRole('region', { name: 'Pairing' });
    await pairing.getByText('No token requested yet.').waitFor();

    await pairing.getByRole('button', { name: 'Pair', exact: true }).click();
    const token = await shownToken();
    expect(await pairing.getByLabel('Connector URL', { exact: true }).textContent()).toBe(`${base}/connector/graphql`);
    // Five minutes by default (PLEXUS_CONNECTOR_APP_TOKEN_TTL), counting down on the screen.
    await expect.poll(() => pairing.getByLabel('Time left').textContent()).toMatch(/^in [0-4]:[0-5]\d$/);
    const first = await pairing.getByLabel('Time left').textContent();
    await expect.poll(() => pairing.getByLabel('Time left').textContent(), { timeout: WAIT_MS }).not.toBe(first);
    expect(await pairing.getByLabel('Token used').textContent()).toBe('not yet');
    // The copy button puts the token itself on the clipboard.
    await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await pairing.getByRole('button', { name: 'Copy the one-time token' }).click();
    await pairing.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
    expect(await page.evaluate(() => (globalThis as unknown as { navigator: { clipboard: { readText(): Promise<string> } } }).navigator.clipboard.readText())).toBe(token);
    await pairing.getByRole('button', { name: 'Copy the connector URL' }).waitFor();
    await checkScreen('p01-application-pairing');

    // The application's agent redeems it; the page says so when asked again.
    expect(await redeem(token)).toEqual({ ok: true });
    await pairing.getByRole('button', { name: 'Check whether it was used' }).click();
    await expect.poll(() => pairing.getByLabel('Token used').textContent()).toMatch(/^yes, /);
    await expect.poll(() => pairing.getByLabel('Latest token').textContent()).toContain(': used');
    // A used token is not replaced: no warning with the next one.
    await pairing.getByRole('button', { name: 'Pair', exact: true }).click();
    await expect.poll(() => shownToken()).not.toBe(token);
    expect(await pairing.getByText(/It replaces the token/).count()).toBe(0);
  });

  it('requesting again replaces an unused token, says so, and the old one stops working', async () => {
    const pairing = page.getByRole('region', { name: 'Pairing' });
    await expect.poll(() => pairing.getByLabel('Latest token').textContent()).toContain(': not used yet');
    const second = await shownToken();
    await pairing.getByRole('button', { name: 'Pair', exact: true }).click();
    await expect.poll(() => shownToken()).not.toBe(second);
    const third = await shownToken();
    await pairing.getByText(/It replaces the token requested .*, which no longer works\./).waitFor();
    await checkScreen('p02-application-pairing-replaced');
    const refused = await redeem(second);
    expect(refused.ok).toBe(false);
    expect(refused.message).toMatch(/token/i);
    expect(await redeem(third)).toEqual({ ok: true });
  });

  it('pairs a runtime and shows its token expire', async () => {
    await page.goto(`${base}/runtimes/${runtimeId}`);
    await page.getByRole('heading', { name: 'Runtime edge-1' }).waitFor();
    const pairing = page.getByRole('region', { name: 'Pairing' });
    await pairing.getByRole('button', { name: 'Pair', exact: true }).click();
    const token = await shownToken();
    expect(token.length).toBeGreaterThan(40);
    expect(await pairing.getByLabel('Token used').textContent()).toBe('not yet');
    await checkScreen('p03-runtime-pairing');
    // The countdown reaches its end on the screen (the TTL is short here), then the Director agrees.
    await expect.poll(() => pairing.getByLabel('Time left').textContent(), { timeout: RUNTIME_TOKEN_TTL_MS + WAIT_MS }).toBe('expired');
    await pairing.getByRole('button', { name: 'Check whether it was used' }).click();
    await expect.poll(() => pairing.getByLabel('Latest token').textContent()).toContain('expired without being used');
    expect((await redeem(token)).ok).toBe(false);
  });

  it('offers no pairing for a BASIC application', async () => {
    const basic = (await director('mutation { registerApplication(in: {name: "static", integrationLevel: BASIC}) { id } }')).registerApplication.id as string;
    await page.goto(`${base}/applications/${basic}`);
    const pairing = page.getByRole('region', { name: 'Pairing' });
    await pairing.getByText(/BASIC application .* is not paired/).waitFor();
    expect(await pairing.getByRole('button', { name: 'Pair', exact: true }).count()).toBe(0);
  });

  it('creates an enrolment secret on the Workers screen; the worker that redeems it is listed with its components and in-flight deliveries', async () => {
    await page.getByRole('link', { name: 'Workers' }).click();
    await page.getByRole('heading', { name: 'Workers', level: 1 }).waitFor();
    await page.getByText('No worker attached.').waitFor();
    await page.getByText('No enrolment secrets.').waitFor();

    const form = page.getByRole('form', { name: 'Enrol a worker' });
    await form.getByLabel('Components it may serve').fill('Not A Name!');
    await form.getByRole('button', { name: 'Create enrolment secret' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toMatch(/^VALIDATION_FAILED: .*component/);

    await form.getByLabel('Components it may serve').fill('keyed@1, spare');
    await form.getByLabel('Expires unused after').selectOption({ label: '1 hour' });
    await form.getByRole('button', { name: 'Create enrolment secret' }).click();
    const secretCode = form.getByLabel('Enrolment secret', { exact: true });
    await expect.poll(() => secretCode.textContent()).toMatch(/^pwe_/);
    const secret = (await secretCode.textContent())!;
    const expiresAt = (await hub.api('GET', '/api/v1/workers/enrolments')).body.data[0].expiresAt as string;
    // About an hour from now, as chosen.
    expect(Date.parse(expiresAt) - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(Date.parse(expiresAt) - Date.now()).toBeLessThanOrEqual(60 * 60_000);
    await form.getByRole('button', { name: 'Copy the enrolment secret' }).waitFor();
    const enrolments = page.getByRole('region', { name: 'Enrolment secrets table' });
    await enrolments.getByRole('cell', { name: 'keyed@1, spare' }).waitFor();
    // The list never carries the secret.
    expect(await enrolments.textContent()).not.toContain(secret.split('.')[1]);
    await checkScreen('p04-workers-enrolled');

    // A worker redeems the secret and serves `keyed`; a call waits until the test lets it finish,
    // so one delivery is in flight while the screen is read.
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const worker = await startSdkWorker(
      [`127.0.0.1:${hub.grpcPort()}`],
      [{ name: 'keyed', version: '1.2.0', functions: { call: async () => (calls++, await held, { emit: [{ body: { ok: true } }] }) } }],
      { workerId: 'w-browser', enrolmentSecret: secret, credentialFile: path.join(dir, 'w.cred'), concurrency: 4 },
    );
    workers.push(worker);
    await page.getByRole('button', { name: 'Read again' }).click();
    const attached = page.getByRole('region', { name: 'Attached workers table' });
    const row = attached.getByRole('row').filter({ hasText: 'w-browser' });
    await row.waitFor();
    expect(await row.getByRole('cell').allTextContents()).toEqual([
      'w-browser',
      'keyed@1.2.0 call',
      '0 of 4',
      expect.stringMatching(/\(\d+ s ago\)$/),
      expect.any(String),
      expect.stringMatching(/^plain · /),
    ]);
    await enrolments.getByRole('cell', { name: /by w-browser$/ }).waitFor();

    const flowId = await createAndStart(hub, {
      nodes: [
        { id: 'in', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } },
        { id: 'remote', componentId: 'keyed', function: 'call', nodeSettings: { runtime: 'workers', timeoutMs: 60_000 } },
      ],
      edges: [{ source: 'in', target: 'remote' }],
    });
    const executionId = await trigger(hub, flowId, { order: 1 });
    await expect.poll(() => calls, { timeout: WAIT_MS }).toBe(1);
    await page.getByRole('button', { name: 'Read again' }).click();
    await expect.poll(() => row.getByRole('cell').nth(2).textContent()).toBe('1 of 4');
    await checkScreen('p05-workers-attached');
    release();
    expect((await waitForExecution(hub, executionId, WAIT_MS)).status).toBe('succeeded');
    await page.getByRole('button', { name: 'Read again' }).click();
    await expect.poll(() => row.getByRole('cell').nth(2).textContent()).toBe('0 of 4');
  });

  it('is usable at 390 px', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [url, name] of [
      [`/applications/${appId}`, 'p06-mobile-application'],
      [`/runtimes/${runtimeId}`, 'p07-mobile-runtime'],
      ['/workers', 'p08-mobile-workers'],
    ] as const) {
      await page.goto(`${base}${url}`);
      await page.locator('main h1').waitFor();
      if (url !== '/workers') {
        await page.getByRole('region', { name: 'Pairing' }).getByRole('button', { name: 'Pair', exact: true }).click();
        await shownToken();
      }
      await checkScreen(name);
      expect(await documentWidth(page), url).toBeLessThanOrEqual(390);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });
  it('shows a reader the pairing status and the workers without the means to change them', async () => {
    const created = await hub.api('POST', '/api/v1/users', { username: 'reader', password: 'reader-password', kind: 'user', permissions: ['application:read', 'runtime:read', 'workers.read'] });
    expect(created.status).toBe(201);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.getByLabel('Username').fill('reader');
    await page.getByLabel('Password').fill('reader-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Workers' }).waitFor();
    await page.goto(`${base}/applications/${appId}`);
    const pairing = page.getByRole('region', { name: 'Pairing' });
    // The status of the newest token (requested at 390 px above), never the token.
    await expect.poll(() => pairing.getByLabel('Latest token').textContent()).toContain(': not used yet');
    expect(await pairing.getByRole('button', { name: 'Pair', exact: true }).count()).toBe(0);
    expect(await pairing.getByLabel('One-time token', { exact: true }).count()).toBe(0);
    await page.goto(`${base}/workers`);
    await page.getByRole('region', { name: 'Attached workers table' }).getByRole('row').filter({ hasText: 'w-browser' }).waitFor();
    expect(await page.getByRole('form', { name: 'Enrol a worker' }).count()).toBe(0);
    await checkScreen('p09-reader-workers');
  });
});
