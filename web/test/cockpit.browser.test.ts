/**
 * The cockpit in a real browser (Debian's chromium, playwright-core) against a real hub on a
 * fresh embedded database, as an administrator uses it: sign in, build webhook → transform →
 * http-request on the canvas (to a sink this test runs), start it, send a webhook, watch the
 * execution appear and open its steps, retry a failed one, find the audit record, survive an
 * expired session, sign out. Every screen is screenshotted to web/test-results/ and checked
 * with axe-core (no serious or critical violations), at 1280 px and at 390 px.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../../server/test/helpers/engine.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../../server/test/helpers/hub.js';
import { documentWidth, launchBrowser, screenshot, seriousViolations, sessionItem, type Browser } from './browser.js';

const DIST_INDEX = fileURLToPath(new URL('../dist/index.html', import.meta.url));
/** Generous for a busy two-core machine; nothing waits this long when things work. */
const WAIT_MS = 20_000;

describe('the cockpit in chromium', () => {
  let hub: TestHub;
  let base: string;
  let sink: Sink;
  let browser: Browser;
  let page: Page;
  let flowId = '';
  let firstExecution = '';
  let failedExecution = '';

  /** Screenshot and accessibility check of the screen as it is now. */
  const checkScreen = async (name: string): Promise<void> => {
    await screenshot(page, name);
    const serious = await seriousViolations(page);
    expect(serious, `axe on ${name}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
  };

  const hook = async (body: unknown): Promise<string> => {
    const res = await fetch(`${base}/hook/${flowId}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect(res.status).toBe(202);
    return ((await res.json()) as { data: { executionId: string } }).data.executionId;
  };

  const signIn = async (): Promise<void> => {
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(TEST_ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
  };

  beforeAll(async () => {
    if (!fs.existsSync(DIST_INDEX)) throw new Error('web/dist is not built: run `npm run build -w web` (npm ci and `npm test -w web` do)');
    hub = await createTestHub({ target: 'pglite' });
    base = await hub.listen();
    sink = await startSink();
    browser = await launchBrowser();
    page = browser.page;
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    fs.rmSync(path.join(fileURLToPath(new URL('../test-results/', import.meta.url))), { recursive: true, force: true });
  });

  afterAll(async () => {
    await browser?.close();
    await hub?.close();
    await sink?.close();
  });

  it('signs in and lands on the page it was asked for', async () => {
    await page.goto(`${base}/flows`);
    await page.waitForURL(/\/sign-in\?next=%2Fflows/);
    await checkScreen('01-sign-in');
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill('wrong password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('UNAUTHENTICATED');
    await signIn();
    await page.waitForURL(`${base}/flows`);
    await page.getByRole('heading', { name: 'Flows' }).waitFor();
    await page.getByText('No flows yet.').waitFor();
    await checkScreen('02-flows-empty');
  });

  it('builds webhook → transform → http-request on the canvas and saves it', async () => {
    await page.getByRole('link', { name: 'New flow' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Orders to the sink');
    const addStep = page.getByRole('form', { name: 'Add a step' });
    await addStep.getByLabel('Component').selectOption({ label: 'Transform — JSONata' });
    await addStep.getByRole('button', { name: 'Add step' }).click();
    await page.getByRole('heading', { name: 'Step transform-1' }).waitFor();
    await page.getByLabel('Expression').fill('{"order": id, "total": qty * price}');
    await addStep.getByLabel('Component').selectOption({ label: 'HTTP request — Request' });
    await addStep.getByRole('button', { name: 'Add step' }).click();
    await page.getByRole('heading', { name: 'Step http-request-1' }).waitFor();
    await page.getByLabel('Method').selectOption('POST');
    await page.getByRole('textbox', { name: /^Url/ }).fill(sink.url);

    // The trigger to the first step by dragging between the handles on the canvas…
    const from = page.locator('.react-flow__node[data-id="trigger"] .react-flow__handle.source');
    const to = page.locator('.react-flow__node[data-id="transform-1"] .react-flow__handle.target');
    await from.dragTo(to);
    await page.locator('.react-flow__edge[data-id="trigger->transform-1"]').waitFor({ state: 'attached' });
    // …and the next edge with the keyboard-friendly form.
    const join = page.getByRole('form', { name: 'Connect two nodes' });
    await join.getByLabel('From').selectOption('transform-1');
    await join.getByLabel('To').selectOption('http-request-1');
    await join.getByRole('button', { name: 'Connect' }).click();
    await page.locator('.react-flow__edge[data-id="transform-1->http-request-1"]').waitFor({ state: 'attached' });

    // The edge's mapper, tried on the sample message in the browser.
    await page.getByRole('button', { name: 'Edge transform-1 → http-request-1' }).click();
    await page.getByLabel('Mapper (JSONata)').fill('$merge([$, {"currency": "EUR"}])');
    await expect.poll(() => page.locator('.jsonata output').nth(1).textContent()).toContain('"currency": "EUR"');
    await checkScreen('03-flow-editor');

    await page.getByRole('button', { name: 'Create' }).click();
    await page.waitForURL(/\/flows\/[0-9a-f-]{36}$/);
    flowId = page.url().split('/').pop()!;
    await page.getByRole('button', { name: 'Start' }).waitFor();
    const stored = await hub.api('GET', `/api/v1/flows/${flowId}`);
    expect(stored.body.data.graph.nodes.map((n: { id: string }) => n.id)).toEqual(['transform-1', 'http-request-1']);
    expect(stored.body.data.graph.edges).toEqual([{ id: 'transform-1->http-request-1', source: 'transform-1', target: 'http-request-1', config: { mapper: '$merge([$, {"currency": "EUR"}])' } }]);
  });

  it('shows the problems the hub finds on the step they concern', async () => {
    // Saved without a URL, the flow is refused when it starts: the reason names the step.
    await page.getByRole('button', { name: 'Step http-request-1' }).click();
    await page.getByRole('textbox', { name: /^Url/ }).fill('');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as version 2.').waitFor();
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('.react-flow__node[data-id="http-request-1"] .problem-count').waitFor();
    await page.getByText(/Last start failed: .*http-request-1/).waitFor();
    await page.getByRole('button', { name: /Step http-request-1 — 1 problem/ }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/url/i);
    await checkScreen('04-flow-problems');
    await page.getByRole('textbox', { name: /^Url/ }).fill(sink.url);
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Saved as version 3.').waitFor();
    await expect.poll(() => page.locator('.problem-count').count()).toBe(0);
  });

  it('starts the flow with its live status, shows the webhook URL and the versions diff', async () => {
    await page.getByRole('button', { name: 'Start' }).click();
    await page.locator('.page-header .badge', { hasText: 'active' }).waitFor();
    await page.getByText(`${base}/hook/${flowId}`).first().waitFor();
    await expect.poll(() => page.getByLabel('curl example').textContent()).toContain(`curl -X POST '${base}/hook/${flowId}'`);
    // Version 2 → 3 put the URL back: the diff shows it added.
    await page.getByRole('heading', { name: 'Versions' }).scrollIntoViewIfNeeded();
    const diff = page.getByLabel(/Changes from version 2 to version 3/);
    await expect.poll(() => diff.locator('.diff-added').allTextContents()).toEqual([expect.stringContaining(`"url": "${sink.url}"`)]);
    await checkScreen('05-flow-active');
  });

  it('shows a new execution as it happens and opens its steps with input and output', async () => {
    await page.getByRole('link', { name: 'Executions', exact: true }).click();
    await page.getByRole('heading', { name: 'Executions' }).waitFor();
    firstExecution = await hook({ id: 'A-1', qty: 3, price: 50 });
    // No reload: the list follows the hub's events.
    const link = page.getByRole('link', { name: `Execution ${firstExecution}` });
    await link.waitFor();
    await expect.poll(() => page.locator('tr', { has: link }).locator('.badge').textContent()).toBe('succeeded');
    expect(sink.requests.at(-1)?.body).toEqual({ order: 'A-1', total: 150, currency: 'EUR' });
    await checkScreen('06-executions');
    await link.click();
    await page.getByRole('heading', { name: `Execution ${firstExecution.slice(0, 8)}` }).waitFor();
    const runs = page.getByRole('list', { name: 'Step runs in order' });
    await runs.locator('summary', { hasText: 'transform-1' }).click();
    await runs.locator('summary', { hasText: 'http-request-1' }).click();
    await expect.poll(() => page.getByLabel('Input of transform-1').textContent()).toContain('"qty": 3');
    await expect.poll(() => page.getByLabel('Output of transform-1').textContent()).toContain('"total": 150');
    await expect.poll(() => page.getByLabel('Output of http-request-1').textContent()).toContain('"status": 200');
    await checkScreen('07-execution');
  });

  it('retries a failed execution and watches it succeed', async () => {
    sink.respond(422, { error: 'order rejected' });
    failedExecution = await hook({ id: 'B-2', qty: 1, price: 5 });
    await page.goto(`${base}/executions/${failedExecution}`);
    await page.locator('.page-header .badge', { hasText: 'failed' }).waitFor();
    await expect.poll(() => page.locator('.run-failed .error').first().textContent()).toContain('422');
    await checkScreen('08-execution-failed');
    sink.respond(200);
    await page.getByRole('button', { name: 'Retry failed steps' }).click();
    await page.getByText('Retrying 1 failed step.').waitFor();
    await page.locator('.page-header .badge', { hasText: 'succeeded' }).waitFor();
    expect(sink.requests.at(-1)?.body).toEqual({ order: 'B-2', total: 5, currency: 'EUR' });
  });

  it('finds the retry in the audit log', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    await page.getByLabel('Event').fill('audit.orchestrator.execution.retried');
    const row = page.locator('tr', { hasText: 'audit.orchestrator.execution.retried' });
    await row.waitFor();
    expect(await row.textContent()).toContain(failedExecution);
    await checkScreen('09-audit');
  });

  it('shows throughput, secrets, components, and users and roles', async () => {
    await page.getByRole('link', { name: 'Throughput' }).click();
    await page.getByText(/Last hour: 2 executions finished, 0 failed/).waitFor();
    await checkScreen('10-throughput');
    await page.getByRole('link', { name: 'Secrets' }).click();
    await page.getByLabel('Name', { exact: true }).fill('sink login');
    await page.getByLabel('Username').fill('shop');
    await page.getByLabel('Password').fill('s3cret-value');
    await page.getByRole('button', { name: 'Create secret' }).click();
    const secretRow = page.locator('tr', { hasText: 'sink login' });
    await secretRow.waitFor();
    expect(await secretRow.textContent()).not.toContain('s3cret-value');
    await checkScreen('11-secrets');
    await page.getByRole('link', { name: 'Components' }).click();
    await page.getByRole('heading', { name: /HTTP request/ }).waitFor();
    await checkScreen('12-components');
    await page.getByRole('link', { name: 'Users & roles' }).click();
    await page.locator('td', { hasText: 'admin' }).first().waitFor();
    const newRole = page.getByRole('form', { name: 'New role' });
    await newRole.getByLabel('Name').fill('operators');
    await newRole.getByLabel('executions.read').check();
    await newRole.getByRole('button', { name: 'Create role' }).click();
    await page.locator('tr', { hasText: 'operators' }).waitFor();
    const newUser = page.getByRole('form', { name: 'New user' });
    await newUser.getByLabel('Username').fill('oscar');
    await newUser.getByLabel(/^Password/).fill('oscar-password');
    await newUser.getByLabel('operators').check();
    await newUser.getByRole('button', { name: 'Create user' }).click();
    const oscar = page.locator('tr', { hasText: 'oscar' });
    await expect.poll(() => oscar.textContent()).toContain('operators');
    await page.getByRole('button', { name: 'Change oscar' }).click();
    const change = page.getByRole('form', { name: 'Change oscar' });
    await change.getByLabel('audit.read').check();
    await change.getByRole('button', { name: 'Save oscar' }).click();
    await expect.poll(() => oscar.textContent()).toContain('audit.read');
    await checkScreen('13-users');
  });

  it('is usable at 390 px: no sideways scrolling, the menu opens', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [url, name] of [
      [`/executions/${firstExecution}`, '14-mobile-execution'],
      [`/flows/${flowId}`, '15-mobile-flow'],
      ['/executions', '16-mobile-executions'],
    ] as const) {
      await page.goto(`${base}${url}`);
      await page.locator('main h1').waitFor();
      await checkScreen(name);
      expect(await documentWidth(page), url).toBeLessThanOrEqual(390);
    }
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('link', { name: 'Audit log' }).waitFor();
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('lets a platform admin act in another tenant', async () => {
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
    await page.goto(`${base}/flows`);
    await page.getByRole('link', { name: 'Orders to the sink' }).waitFor();
    await page.getByLabel('Tenant').selectOption('acme');
    await page.getByText('No flows yet.').waitFor();
    expect(JSON.parse((await sessionItem(page, 'plexus.session'))!)).toMatchObject({ tenant: 'acme' });
    await page.getByLabel('Tenant').selectOption('default');
    await page.getByRole('link', { name: 'Orders to the sink' }).waitFor();
  });

  it('sends an expired session back to sign-in and returns to the page afterwards', async () => {
    // A page without a live stream: a stream's reconnect would meet the 401 first (also right,
    // but then the session ends before the click below, and the test would race it).
    await page.goto(`${base}/components`);
    await page.getByRole('heading', { name: /HTTP request/ }).waitFor();
    const stored = await sessionItem(page, 'plexus.session');
    const { token } = JSON.parse(stored!) as { token: string };
    // The session ends behind the page's back (revoked, as an expiry would).
    expect((await fetch(`${base}/api/v1/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status).toBe(204);
    await page.getByRole('link', { name: 'Flows' }).click();
    await page.waitForURL(/\/sign-in\?next=%2Fflows/);
    await page.getByText('Your session has expired').waitFor();
    await signIn();
    await page.waitForURL(`${base}/flows`);
    await page.getByRole('link', { name: 'Orders to the sink' }).waitFor();
  });

  it('signs out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.getByText('You have signed out.').waitFor();
    expect(await sessionItem(page, 'plexus.session')).toBeNull();
    await page.goto(`${base}/flows`);
    await page.waitForURL(/\/sign-in\?next=%2Fflows/);
  });
});
