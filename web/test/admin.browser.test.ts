/**
 * The administration screens the first browser test does not cover, in chromium against a real
 * hub: delete a flow, a service account and an API token for it (shown once, usable, revoked),
 * tenants and their limits (platform admin), errors shown by name (a refused input, a hub that
 * does not answer), and the keyboard (skip link, forms submitted with Enter). Screenshots and
 * axe-core checks as in the other browser tests.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../../server/test/helpers/hub.js';
import { documentWidth, launchBrowser, screenshot, seriousViolations, type Browser } from './browser.js';

const DIST_INDEX = fileURLToPath(new URL('../dist/index.html', import.meta.url));
/** Generous for a busy two-core machine; nothing waits this long when things work. */
const WAIT_MS = 30_000;

describe('administration in the cockpit', () => {
  let hub: TestHub;
  let base: string;
  let browser: Browser;
  let page: Page;

  const checkScreen = async (name: string): Promise<void> => {
    await screenshot(page, name);
    const serious = await seriousViolations(page);
    expect(serious, `axe on ${name}: ${JSON.stringify(serious, null, 2)}`).toEqual([]);
  };

  /** The element that has the keyboard focus, as "tag:text-or-label". */
  const focused = (): Promise<string> =>
    page.evaluate(() => {
      const el = (globalThis as unknown as { document: { activeElement: { tagName: string; id: string; textContent: string | null } | null } }).document.activeElement;
      return el ? `${el.tagName.toLowerCase()}#${el.id}:${(el.textContent ?? '').trim().slice(0, 40)}` : '';
    });

  beforeAll(async () => {
    if (!fs.existsSync(DIST_INDEX)) throw new Error('web/dist is not built: run `npm run build -w web` (npm ci and `npm test -w web` do)');
    hub = await createTestHub({ target: 'pglite' });
    base = await hub.listen();
    browser = await launchBrowser();
    page = browser.page;
    page.setDefaultTimeout(WAIT_MS);
    page.setDefaultNavigationTimeout(WAIT_MS);
    page.on('dialog', (d) => void d.accept());
  });

  afterAll(async () => {
    await browser?.close();
    await hub?.close();
  });

  it('signs in with the keyboard alone and skips to the content', async () => {
    await page.goto(`${base}/tenants`);
    await page.waitForURL(/\/sign-in/);
    await page.getByLabel('Username').focus();
    await page.keyboard.type('admin');
    await page.keyboard.press('Tab');
    await page.keyboard.type(TEST_ADMIN_PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    // The first Tab of a fresh page reaches the skip link; Enter moves the focus to the content.
    await page.reload();
    await page.getByRole('heading', { name: 'Tenants' }).waitFor();
    await page.keyboard.press('Tab');
    expect(await focused()).toMatch(/^a#:Skip to content/);
    await page.keyboard.press('Enter');
    expect(await focused()).toMatch(/^main#main/);
  });

  it('creates, renames and limits a tenant, and names the refusal of a taken id', async () => {
    const form = page.getByRole('form', { name: 'New tenant' });
    await form.getByLabel('Tenant id').fill('acme');
    await form.getByLabel('Tenant name').fill('Acme Corp');
    await form.getByLabel('Tenant name').press('Enter');
    await page.getByRole('cell', { name: 'Acme Corp' }).waitFor();
    await form.getByLabel('Tenant id').fill('acme');
    await form.getByLabel('Tenant name').fill('Acme again');
    await form.getByRole('button', { name: 'Create tenant' }).click();
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/^(ALREADY_EXISTS|CONFLICT): .*acme/);

    await page.getByRole('button', { name: 'Rename acme' }).click();
    await page.getByLabel('New name of acme').fill('Acme Inc');
    await page.getByRole('button', { name: 'Save name' }).click();
    await page.getByRole('cell', { name: 'Acme Inc' }).waitFor();

    await page.getByRole('button', { name: 'Limits of acme' }).click();
    const limits = page.getByRole('form', { name: 'Limits of acme' });
    await limits.getByLabel('Concurrent executions').fill('5');
    await limits.getByRole('button', { name: 'Save limits' }).click();
    await limits.getByText('Limits saved.').waitFor();
    const stored = await hub.api('GET', '/api/v1/tenants/acme/limits');
    expect(stored.body.data.overrides).toEqual({ concurrentExecutions: 5 });
    expect(stored.body.data.limits.concurrentExecutions).toBe(5);
    await checkScreen('a01-tenants');

    await page.getByRole('button', { name: 'Delete tenant acme' }).click();
    await expect.poll(() => page.getByRole('cell', { name: 'Acme Inc' }).count()).toBe(0);
    expect((await hub.api('GET', '/api/v1/tenants/acme')).status).toBe(404);
  });

  it('creates a service account, issues it a token shown once, and revokes it', async () => {
    await page.getByRole('link', { name: 'Users & roles' }).click();
    const newUser = page.getByRole('form', { name: 'New user' });
    await newUser.getByLabel('Username').fill('ci-bot');
    await newUser.getByLabel('Kind').selectOption('service');
    expect(await newUser.getByLabel(/^Password/).count()).toBe(0);
    await newUser.getByLabel('flows.read').check();
    await newUser.getByRole('button', { name: 'Create user' }).click();
    await page.locator('tr', { hasText: 'ci-bot' }).waitFor();

    await page.getByRole('link', { name: 'API tokens' }).click();
    await page.getByText('No tokens.').waitFor();
    const issue = page.getByRole('form', { name: 'Issue a token' });
    await issue.getByRole('combobox', { name: 'Account' }).selectOption({ label: 'ci-bot (service)' });
    await issue.getByLabel('Description').fill('deploys from CI');
    await issue.getByRole('button', { name: 'Issue token' }).click();
    const shown = page.getByLabel('New token', { exact: true });
    await expect.poll(() => shown.textContent()).toMatch(/\S{20,}/);
    const token = (await shown.textContent())!;
    await page.locator('tr', { hasText: 'deploys from CI' }).waitFor();
    await checkScreen('a02-tokens');

    const me = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { data: { username: string } }).data.username).toBe('ci-bot');
    // The value is never listed again.
    await page.reload();
    await page.locator('tr', { hasText: 'deploys from CI' }).waitFor();
    expect(await page.content()).not.toContain(token);

    await page.getByRole('button', { name: /Revoke token deploys from CI of ci-bot/ }).click();
    await page.getByText('No tokens.').waitFor();
    expect((await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
  });

  it('reveals a secret on request only, and names a component that cannot be registered', async () => {
    expect((await hub.api('POST', '/api/v1/secrets', { name: 'erp login', type: 'basic', value: { username: 'erp', password: 'pa55-word' } })).status).toBe(201);
    await page.getByRole('link', { name: 'Secrets' }).click();
    const row = page.locator('tr', { hasText: 'erp login' });
    await row.waitFor();
    expect(await row.textContent()).not.toContain('pa55-word');
    await row.getByRole('button', { name: 'Reveal erp login' }).click();
    await expect.poll(() => page.getByLabel('Value of erp login').textContent()).toContain('pa55-word');
    await row.getByRole('button', { name: 'Hide erp login' }).click();
    await expect.poll(() => page.getByLabel('Value of erp login').count()).toBe(0);
    const audited = await hub.api('GET', '/api/v1/audit?filter[module]=secrets');
    expect(JSON.stringify(audited.body.data)).toContain('erp login');

    await page.getByRole('link', { name: 'Components' }).click();
    const form = page.getByRole('form', { name: 'Register a component' });
    await form.getByLabel('Package name').fill('no-such-component-package');
    await form.getByRole('button', { name: 'Register component' }).click();
    await expect.poll(() => form.getByRole('alert').textContent()).toMatch(/^[A-Z_]+: .*no-such-component-package/);
  });

  it('deletes an inactive flow', async () => {
    const created = await hub.api('POST', '/api/v1/flows', { name: 'Old flow', graph: { nodes: [{ id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '$' } }], edges: [] } });
    expect(created.status).toBe(201);
    await page.goto(`${base}/flows/${created.body.data.id}`);
    await page.getByRole('heading', { name: 'Flow Old flow' }).waitFor();
    await page.getByRole('button', { name: 'Delete' }).click();
    await page.waitForURL(`${base}/flows`);
    await page.getByText('No flows yet.').waitFor();
    expect((await hub.api('GET', `/api/v1/flows/${created.body.data.id}`)).status).toBe(404);
  });

  it('is usable at 390 px', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [url, name] of [
      ['/tokens', 'a03-mobile-tokens'],
      ['/tenants', 'a04-mobile-tenants'],
      ['/secrets', 'a05-mobile-secrets'],
    ] as const) {
      await page.goto(`${base}${url}`);
      await page.locator('main h1').waitFor();
      await checkScreen(name);
      expect(await documentWidth(page), url).toBeLessThanOrEqual(390);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('shows a reader of the Director its screens without the means to change them', async () => {
    const created = await hub.api('POST', '/api/v1/users', { username: 'reader', password: 'reader-password', kind: 'user', permissions: ['application:read', 'runtime:read', 'label_definition:read'] });
    expect(created.status).toBe(201);
    expect((await hub.api('POST', '/director/graphql', { query: 'mutation { registerApplication(in: {name: "crm"}) { id } }' })).body.errors).toBeUndefined();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.getByLabel('Username').fill('reader');
    await page.getByLabel('Password').fill('reader-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Applications' }).click();
    await page.getByRole('link', { name: 'crm' }).click();
    await page.getByRole('heading', { name: 'Application crm' }).waitFor();
    expect(await page.getByRole('button', { name: /Unregister|Edit|Set label|Add API|Add webhook|Issue a credential/ }).count()).toBe(0);
    expect(await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents()).toEqual(['Applications', 'Runtimes', 'Labels & scenarios']);
    await checkScreen('a06-reader-application');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL(/\/sign-in/);
    await page.getByLabel('Username').fill('admin');
    await page.getByLabel('Password').fill(TEST_ADMIN_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('link', { name: 'Tenants' }).waitFor();
  });

  it('names a hub that does not answer', async () => {
    await page.goto(`${base}/tokens`);
    await page.getByRole('heading', { name: 'API tokens' }).waitFor();
    await page.route('**/api/v1/tokens**', (route) => route.abort('connectionrefused'));
    await page.getByLabel('Kind').selectOption('session');
    await expect.poll(() => page.getByRole('alert').first().textContent()).toMatch(/^HUB_UNREACHABLE: /);
    await page.unroute('**/api/v1/tokens**');
  });
});
