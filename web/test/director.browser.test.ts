/**
 * The Director's screens in a real browser (Debian's chromium, playwright-core) against a real
 * hub on a fresh embedded database: scenarios and label definitions, register an application,
 * give it an API (OpenAPI, rendered as its operations), an event (AsyncAPI), a markdown
 * document, labels, scenarios and a webhook (to a sink this test runs); register a runtime in
 * its scenario, make it READY and watch the signed notification reach the sink and its delivery
 * appear; filter the lists by label; errors named as the Director names them; unregister both.
 * Every screen is screenshotted to web/test-results/ and checked with axe-core (no serious or
 * critical violations), at 1280 px and at 390 px.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSink, type Sink } from '../../server/test/helpers/engine.js';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../../server/test/helpers/hub.js';
import { documentWidth, launchBrowser, screenshot, seriousViolations, type Browser } from './browser.js';

const DIST_INDEX = fileURLToPath(new URL('../dist/index.html', import.meta.url));
/** Generous for a busy two-core machine; nothing waits this long when things work. */
const WAIT_MS = 30_000;

const OPENAPI = `openapi: 3.0.3
info: { title: Shop orders, version: '2.1' }
paths:
  /orders:
    get: { summary: List the orders, responses: { '200': { description: ok } } }
    post: { summary: Place an order, responses: { '201': { description: created } } }
`;

const ASYNCAPI = `asyncapi: 2.6.0
info: { title: Shop events, version: '1.0' }
channels:
  order/created:
    subscribe:
      summary: An order was placed
      message: { payload: { type: object } }
`;

describe('the Director in the cockpit', () => {
  let hub: TestHub;
  let base: string;
  let sink: Sink;
  let browser: Browser;
  let page: Page;
  let appId = '';
  let runtimeId = '';

  const checkScreen = async (name: string): Promise<void> => {
    await screenshot(page, name);
    const serious = await seriousViolations(page);
    expect(serious, `axe on ${name}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
  };

  /** The Director as the hub's own tests see it (to check what the screens stored). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- answers are read loosely, as hub.api's bodies are
  const director = async (query: string, variables: Record<string, unknown> = {}): Promise<any> => {
    const res = await hub.api('POST', '/director/graphql', { query, variables });
    expect(res.body.errors, JSON.stringify(res.body.errors)).toBeUndefined();
    return res.body.data;
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
    // A confirm() before each unregister / delete: the person says yes.
    page.on('dialog', (d) => void d.accept());
  });

  afterAll(async () => {
    await browser?.close();
    await hub?.close();
    await sink?.close();
  });

  it('signs in and adds a scenario and a label definition with a schema', async () => {
    await page.goto(`${base}/labels`);
    await page.waitForURL(/\/sign-in\?next=%2Flabels/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(TEST_ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Labels and scenarios' }).waitFor();
    await page.getByLabel('New scenario').fill('SHOP');
    await page.getByRole('button', { name: 'Add scenario' }).click();
    await page.getByRole('button', { name: 'Remove scenario SHOP' }).waitFor();

    const form = page.getByRole('form', { name: 'New label definition' });
    await form.getByLabel('Key', { exact: true }).fill('env');
    await form.getByLabel(/JSON Schema/).fill('{"type": "string", "enum": ["dev", "prod"]}');
    await form.getByRole('button', { name: 'Create label definition' }).click();
    await page.getByRole('button', { name: 'Delete label definition env' }).waitFor();
    await checkScreen('d01-labels');
    const defs = await director('{ labelDefinitions { key schema } }');
    // JSONSchema is a JSON-encoded string in Compass's answers.
    const schemaOf = (key: string): { items?: { enum?: string[] } } => JSON.parse(defs.labelDefinitions.find((d: { key: string }) => d.key === key).schema);
    expect(schemaOf('scenarios').items?.enum).toEqual(['DEFAULT', 'SHOP']);
    expect(schemaOf('env')).toEqual({ type: 'string', enum: ['dev', 'prod'] });
  });

  it('registers an application in a scenario, and names the error when the name is taken', async () => {
    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByText('No applications yet.').waitFor();
    await checkScreen('d02-applications-empty');
    const form = page.getByRole('form', { name: 'Register an application' });
    await form.getByLabel('Name', { exact: true }).fill('shop');
    await form.getByLabel('Provider').fill('Acme');
    await form.getByLabel('SHOP').check();
    await form.getByRole('button', { name: 'Register application' }).click();
    await page.waitForURL(/\/applications\/[0-9a-f-]{36}$/);
    appId = page.url().split('/').pop()!;
    await page.getByRole('heading', { name: 'Application shop' }).waitFor();
    const stored = await director('query($id: ID!) { application(id: $id) { name providerName integrationLevel labels } }', { id: appId });
    expect(stored.application).toMatchObject({ name: 'shop', providerName: 'Acme', integrationLevel: 'APPLICATION', labels: { scenarios: ['DEFAULT', 'SHOP'] } });

    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByRole('link', { name: 'shop' }).waitFor();
    const again = page.getByRole('form', { name: 'Register an application' });
    await again.getByLabel('Name', { exact: true }).fill('shop');
    await again.getByRole('button', { name: 'Register application' }).click();
    await expect.poll(() => again.getByRole('alert').textContent()).toMatch(/^(CONFLICT|ALREADY_EXISTS): .*shop/);
  });

  it('gives the application an API, an event and a document, and renders them', async () => {
    await page.goto(`${base}/applications/${appId}`);
    const api = page.getByRole('form', { name: 'Add an API definition' });
    await api.getByLabel('API name').fill('orders');
    await api.getByLabel('Target URL').fill('https://shop.example/api');
    await api.getByLabel('Version').fill('v2');
    await api.getByLabel('Spec document').fill(OPENAPI);
    await api.getByLabel('Basic').check();
    await api.getByLabel('Username').fill('shop-svc');
    await api.getByLabel('Password').fill('default-pa55');
    await api.getByRole('button', { name: 'Add API' }).click();
    const orders = page.getByRole('article', { name: /^orders/ });
    // The default credentials are kept by the hub: who, never the password.
    await orders.getByText('basic, user shop-svc').waitFor();
    expect(await page.content()).not.toContain('default-pa55');
    await orders.getByRole('cell', { name: 'Place an order' }).waitFor();
    expect(await orders.getByRole('row').allTextContents()).toEqual(['MethodPathSummary', 'GET/ordersList the orders', 'POST/ordersPlace an order']);
    await orders.getByText("The spec's parser accepted it.").waitFor();

    const event = page.getByRole('form', { name: 'Add an event definition' });
    await event.getByLabel('Event name').fill('order-created');
    await event.getByLabel('Spec document').fill(ASYNCAPI);
    await event.getByRole('button', { name: 'Add event' }).click();
    await page.getByRole('article', { name: /^order-created/ }).getByRole('cell', { name: 'order/created' }).waitFor();

    // A spec its parser refuses is stored (lenient by default) with the problems shown.
    await api.getByLabel('None', { exact: true }).check();
    await api.getByLabel('API name').fill('broken');
    await api.getByLabel('Target URL').fill('https://shop.example/broken');
    await api.getByLabel('Spec document').fill('openapi: 3.0.3\ninfo: { title: no paths }\n');
    await api.getByRole('button', { name: 'Add API' }).click();
    await expect.poll(() => page.getByRole('article', { name: /^broken/ }).getByRole('alert').textContent()).toContain("The spec's parser found problems");

    const doc = page.getByRole('form', { name: 'Add a document' });
    await doc.getByLabel('Title').fill('Onboarding');
    await doc.getByLabel('Summary').fill('How to start');
    await doc.getByLabel('Markdown').fill('# Getting started\n\nCall **orders** first.\n\n<script>alert(1)</script>');
    await doc.getByRole('button', { name: 'Add document' }).click();
    const rendered = page.getByRole('article', { name: 'Onboarding' });
    await rendered.getByRole('heading', { name: 'Getting started' }).waitFor();
    expect(await rendered.locator('strong').textContent()).toBe('orders');
    // Raw HTML in a document is never parsed into the page.
    expect(await rendered.locator('script').count()).toBe(0);
    await checkScreen('d03-application');
  });

  it('sets labels (checked against their definition) and scenarios', async () => {
    const labels = page.getByRole('form', { name: 'Set a label' });
    await labels.getByLabel('Label key').fill('env');
    await labels.getByLabel('Label value').fill('staging');
    await labels.getByRole('button', { name: 'Set label' }).click();
    // The definition allows dev and prod only: the Director's refusal, by name.
    await expect.poll(() => page.getByRole('region', { name: 'Labels' }).getByRole('alert').textContent()).toMatch(/^VALIDATION_FAILED: .*env/);
    await labels.getByLabel('Label value').fill('prod');
    await labels.getByRole('button', { name: 'Set label' }).click();
    await page.getByRole('button', { name: 'Delete label env' }).waitFor();

    const scenarios = page.getByRole('form', { name: 'Scenarios' });
    await scenarios.getByLabel('DEFAULT').uncheck();
    await scenarios.getByRole('button', { name: 'Save scenarios' }).click();
    await page.getByText('Scenarios saved.').waitFor();
    const stored = await director('query($id: ID!) { application(id: $id) { labels } }', { id: appId });
    expect(stored.application.labels).toMatchObject({ env: 'prod', scenarios: ['SHOP'] });
  });

  it('adds a webhook and shows its signing secret once', async () => {
    const form = page.getByRole('form', { name: 'Add a webhook' });
    await form.getByLabel('Webhook URL').fill(sink.url);
    await form.getByRole('button', { name: 'Add webhook' }).click();
    const secret = page.getByLabel('Signing secret', { exact: true });
    await expect.poll(() => secret.textContent()).toMatch(/^whsec_/);
    await page.getByRole('cell', { name: sink.url, exact: true }).waitFor();
    await page.reload();
    await page.getByRole('cell', { name: sink.url, exact: true }).waitFor();
    expect(await page.getByLabel('Signing secret', { exact: true }).count()).toBe(0);
  });

  it('registers a runtime in the scenario, makes it READY, and the application hears of it', async () => {
    await page.getByRole('link', { name: 'Runtimes' }).click();
    await page.getByText('No runtimes yet.').waitFor();
    const form = page.getByRole('form', { name: 'Register a runtime' });
    await form.getByLabel('Name', { exact: true }).fill('edge-1');
    await form.getByLabel('Eventing URL').fill('https://events.example');
    await form.getByLabel('DEFAULT').uncheck();
    await form.getByLabel('SHOP').check();
    await form.getByRole('button', { name: 'Register runtime' }).click();
    await page.waitForURL(/\/runtimes\/[0-9a-f-]{36}$/);
    runtimeId = page.url().split('/').pop()!;
    await page.getByRole('heading', { name: 'Runtime edge-1' }).waitFor();
    await page.getByRole('region', { name: /Applications it sees/ }).getByRole('link', { name: 'shop' }).waitFor();
    await page.getByText('https://events.example').first().waitFor();

    const status = page.getByRole('form', { name: 'Set the status' });
    await status.getByLabel('Status').selectOption('READY');
    await status.getByRole('button', { name: 'Set status' }).click();
    await page.locator('.page-header .badge', { hasText: 'READY' }).waitFor();
    await checkScreen('d04-runtime');

    // The notification is delivered by a bus job: wait for it at the sink, then on the screen.
    await expect.poll(() => sink.requests.length, { timeout: WAIT_MS }).toBeGreaterThan(0);
    const note = sink.requests[0]!;
    expect(note.headers['webhook-signature']).toMatch(/^v1,/);
    expect(note.body).toMatchObject({ type: 'CONFIGURATION_CHANGED', runtime: { id: runtimeId, name: 'edge-1' }, application: { id: appId } });
    await page.getByRole('link', { name: 'shop' }).click();
    const deliveries = page.getByRole('table', { name: 'Webhook deliveries, newest first' });
    await expect
      .poll(
        async () => {
          await page.getByRole('button', { name: 'Read deliveries again' }).click();
          return deliveries.locator('.badge').allTextContents();
        },
        { timeout: WAIT_MS },
      )
      .toEqual(['SUCCEEDED']);
  });

  it('filters applications and runtimes by scenario and by label', async () => {
    expect((await director('mutation { registerApplication(in: {name: "erp", labels: {env: "dev"}}) { id } }')).registerApplication.id).toBeTruthy();
    await page.goto(`${base}/applications`);
    await page.getByRole('link', { name: 'erp' }).waitFor();
    const filter = page.getByRole('search', { name: 'Filter applications' });
    await filter.getByLabel('Scenario').selectOption('SHOP');
    await expect.poll(() => page.getByRole('table').getByRole('link').allTextContents()).toEqual(['shop']);
    await filter.getByLabel('Scenario').selectOption('');
    await filter.getByLabel('Label filter').fill('env=dev');
    await filter.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.getByRole('table').getByRole('link').allTextContents()).toEqual(['erp']);
    await filter.getByLabel('Label filter').fill('env');
    await filter.getByRole('button', { name: 'Filter' }).click();
    await expect.poll(() => page.getByRole('table').getByRole('link').allTextContents().then((l) => l.sort())).toEqual(['erp', 'shop']);
    await checkScreen('d05-applications-filtered');

    await page.getByRole('link', { name: 'Runtimes' }).click();
    const runtimes = page.getByRole('search', { name: 'Filter runtimes' });
    await runtimes.getByLabel('Scenario').selectOption('DEFAULT');
    await page.getByText('No runtimes match.').waitFor();
    await runtimes.getByLabel('Scenario').selectOption('SHOP');
    await page.getByRole('link', { name: 'edge-1' }).waitFor();
    await checkScreen('d06-runtimes');
  });

  it('edits the application and the runtime, and refuses a broken spec by name once validation is STRICT', async () => {
    await page.goto(`${base}/applications/${appId}`);
    await page.getByRole('button', { name: 'Edit' }).click();
    const edit = page.getByRole('form', { name: 'Edit shop' });
    await edit.getByLabel('Provider').fill('Acme Retail');
    await edit.getByLabel('Description').fill('the web shop');
    await edit.getByRole('button', { name: 'Save application' }).click();
    await page.getByRole('definition').filter({ hasText: 'Acme Retail' }).waitFor();

    await page.goto(`${base}/runtimes/${runtimeId}`);
    await page.getByRole('button', { name: 'Edit' }).click();
    const editRuntime = page.getByRole('form', { name: 'Edit edge-1' });
    await editRuntime.getByLabel('Description').fill('the edge cluster');
    await editRuntime.getByRole('button', { name: 'Save runtime' }).click();
    await page.getByRole('definition').filter({ hasText: 'the edge cluster' }).waitFor();
    // The update keeps the runtime's labels (the Director replaces them with the input's).
    const stored = await director('query($id: ID!) { runtime(id: $id) { description labels } }', { id: runtimeId });
    expect(stored.runtime).toMatchObject({ description: 'the edge cluster', labels: { scenarios: ['SHOP'], 'runtime/event_service_url': 'https://events.example' } });

    await page.goto(`${base}/labels`);
    await page.getByLabel('Specs are checked').selectOption('STRICT');
    await expect.poll(async () => (await director('{ directorSettings { specValidation } }')).directorSettings.specValidation).toBe('STRICT');
    await page.goto(`${base}/applications/${appId}`);
    const api = page.getByRole('form', { name: 'Add an API definition' });
    await api.getByLabel('API name').fill('refused');
    await api.getByLabel('Target URL').fill('https://shop.example/refused');
    await api.getByLabel('Spec document').fill('openapi: 3.0.3\ninfo: { title: no paths }\n');
    await api.getByRole('button', { name: 'Add API' }).click();
    await expect.poll(() => api.getByRole('alert').textContent()).toMatch(/^VALIDATION_FAILED: /);
    expect(await page.getByRole('article', { name: /^refused/ }).count()).toBe(0);
  });

  it('issues a credential standing for the runtime, shown once, and revokes it', async () => {
    await page.goto(`${base}/runtimes/${runtimeId}`);
    const section = page.getByRole('region', { name: 'Credentials' });
    await section.getByText('None issued.').waitFor();
    await section.getByRole('button', { name: 'Issue a credential' }).click();
    const shown = section.getByLabel('Credential token', { exact: true });
    await expect.poll(() => shown.textContent()).toMatch(/^plx_/);
    const token = (await shown.textContent())!;
    const asRuntime = async (): Promise<{ status: number; body: { data?: { viewer?: unknown } } }> => {
      const res = await fetch(`${base}/director/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ query: '{ viewer { id type } }' }) });
      return { status: res.status, body: (await res.json()) as { data?: { viewer?: unknown } } };
    };
    expect((await asRuntime()).body.data?.viewer).toEqual({ id: runtimeId, type: 'RUNTIME' });
    await section.getByRole('button', { name: /^Revoke credential/ }).click();
    await section.getByText('None issued.').waitFor();
    expect((await asRuntime()).status).toBe(401);
  });

  it('is usable at 390 px', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [url, name] of [
      [`/applications/${appId}`, 'd07-mobile-application'],
      [`/runtimes/${runtimeId}`, 'd08-mobile-runtime'],
      ['/applications', 'd09-mobile-applications'],
      ['/labels', 'd10-mobile-labels'],
    ] as const) {
      await page.goto(`${base}${url}`);
      await page.locator('main h1').waitFor();
      await checkScreen(name);
      expect(await documentWidth(page), url).toBeLessThanOrEqual(390);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('unregisters the runtime and the application', async () => {
    await page.goto(`${base}/runtimes/${runtimeId}`);
    await page.getByRole('button', { name: 'Unregister' }).click();
    await page.waitForURL(`${base}/runtimes`);
    await page.getByText('No runtimes yet.').waitFor();
    await page.goto(`${base}/applications/${appId}`);
    await page.getByRole('button', { name: 'Unregister' }).click();
    await page.waitForURL(`${base}/applications`);
    await page.getByRole('link', { name: 'erp' }).waitFor();
    expect(await page.getByRole('link', { name: 'shop' }).count()).toBe(0);
    await page.goto(`${base}/applications/${appId}`);
    await page.getByRole('heading', { name: 'Application not found' }).waitFor();
  });
});
