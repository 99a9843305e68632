/**
 * Trust boundaries of the one HTTP origin (issue 10, item 4): who reads /metrics and what it
 * names, the security headers of the API, the cockpit and the docs, and what a flow's sync
 * webhook reply may and may not send from the hub's origin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stepQueueName } from '../../src/contracts/flows.js';
import { waitFor } from '../helpers/flows.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

/** A `<script>` element without `src`: inline code, which the CSP would (rightly) block. */
const INLINE_SCRIPT = /<script(?![^>]*\bsrc=)[^>]*>/i;

describe('security of the HTTP origin', () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await createTestHub();
  });
  afterAll(async () => hub?.close());

  describe('/metrics', () => {
    let tenantUser: string;
    let tenantAdmin: string;
    let scraper: string;
    let flowId: string;

    beforeAll(async () => {
      expect((await hub.api('POST', '/api/v1/tenants', { id: 'acme', name: 'Acme' })).status).toBe(201);
      for (const [username, permissions] of [
        ['acme-user', ['flows.read', 'flows.write', 'flows.control', 'executions.read']],
        ['acme-admin', ['tenant.all']],
      ] as const) {
        const res = await hub.api('POST', '/api/v1/users', { username, password: `${username}-password`, tenant: 'acme', permissions });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
      }
      tenantUser = await hub.login('acme-user', 'acme-user-password', 'acme');
      tenantAdmin = await hub.login('acme-admin', 'acme-admin-password', 'acme');
      // What an operator sets up for Prometheus: a service account with only metrics.read.
      const account = await hub.api('POST', '/api/v1/users', { username: 'prometheus', kind: 'service', permissions: ['metrics.read'] });
      expect(account.status, JSON.stringify(account.body)).toBe(201);
      const token = await hub.api('POST', '/api/v1/tokens', { accountId: account.body.data.id, description: 'scrape' });
      expect(token.status, JSON.stringify(token.body)).toBe(201);
      scraper = token.body.data.token as string;

      // A tenant's flow with a message waiting on one of its step queues.
      const flow = await hub.api(
        'POST',
        '/api/v1/flows',
        { name: 'metered', graph: { nodes: [{ id: 'receive', componentId: 'log', function: 'write' }], edges: [] } },
        tenantUser,
      );
      expect(flow.status, JSON.stringify(flow.body)).toBe(201);
      flowId = flow.body.data.id as string;
      await hub.bus.enqueue(stepQueueName(flowId, 'receive'), { waiting: true });
      await hub.app.inject({ method: 'HEAD', url: `/hook/${flowId}` });
    });

    it('answers 401 without a token and 403 to tenant users, even a tenant admin', async () => {
      const anonymous = await hub.api('GET', '/metrics', undefined, null);
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.errors[0].code).toBe('UNAUTHENTICATED');
      for (const token of [tenantUser, tenantAdmin]) {
        const res = await hub.api('GET', '/metrics', undefined, token);
        expect(res.status).toBe(403);
        expect(res.body.errors[0]).toMatchObject({ code: 'FORBIDDEN', message: 'missing permission metrics.read' });
      }
    });

    it('is readable with metrics.read (and by the platform admin), and names no flow', async () => {
      for (const token of [scraper, hub.adminToken]) {
        const res = await hub.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } });
        expect(res.statusCode).toBe(200);
        expect(res.headers['content-type']).toMatch(/^text\/plain/);
        expect(res.body).toMatch(/^plexus_queue_depth\{queue="step"\} [1-9]\d*$/m);
        expect(res.body).toMatch(/^plexus_queue_oldest_age_seconds\{queue="step"\} /m);
        expect(res.body).toContain('route="/hook/:flowId"');
        expect(res.body).not.toContain(flowId);
      }
    });

    it('is a platform permission: a tenant admin can neither hold nor grant it', async () => {
      const res = await hub.api('POST', '/api/v1/users', { username: 'acme-scraper', kind: 'service', permissions: ['metrics.read'] }, tenantAdmin);
      expect(res.status).toBe(403);
      expect(res.body.errors[0].message).toContain('metrics.read');
    });
  });

  describe('security headers', () => {
    const expectBaseHeaders = (headers: Record<string, unknown>): string => {
      expect(headers['x-content-type-options']).toBe('nosniff');
      expect(headers['x-frame-options']).toBe('DENY');
      expect(headers['referrer-policy']).toBe('no-referrer');
      const csp = String(headers['content-security-policy']);
      expect(csp).toContain("script-src 'self'");
      expect(csp).toContain("frame-ancestors 'none'");
      expect(csp).toContain("object-src 'none'");
      expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
      return csp;
    };

    it('are sent by the API, errors included', async () => {
      expectBaseHeaders((await hub.api('GET', '/api/v1/me')).headers);
      expectBaseHeaders((await hub.api('GET', '/api/v1/me', undefined, null)).headers);
      expectBaseHeaders((await hub.api('GET', '/no/such/route', undefined, null)).headers);
    });

    it('are sent by the cockpit, whose page has no inline script', async () => {
      const res = await hub.app.inject({ method: 'GET', url: '/' });
      expect(res.statusCode).toBe(200);
      expectBaseHeaders(res.headers);
      expect(res.body).not.toMatch(INLINE_SCRIPT);
    });

    it('keep /docs working: the page and its scripts load under the same policy', async () => {
      const page = await hub.app.inject({ method: 'GET', url: '/docs/' });
      expect(page.statusCode).toBe(200);
      expectBaseHeaders(page.headers);
      expect(page.body).not.toMatch(INLINE_SCRIPT);
      const scripts = [...page.body.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]!);
      expect(scripts.length).toBeGreaterThan(0);
      for (const src of scripts) {
        const script = await hub.app.inject({ method: 'GET', url: new URL(src, 'http://hub/docs/').pathname });
        expect(script.statusCode, src).toBe(200);
        expect(script.headers['content-type']).toMatch(/javascript/);
      }
      const spec = await hub.app.inject({ method: 'GET', url: '/docs/json' });
      expect(spec.statusCode).toBe(200);
    });
  });

  describe('sync webhook replies', () => {
    it('carry CSP sandbox and nosniff, and never set cookies or grants on the hub origin', async () => {
      const headers = {
        'content-type': 'text/html; charset=utf-8',
        'x-flow-header': 'kept',
        location: '/elsewhere',
        'set-cookie': 'session=stolen; Path=/',
        'strict-transport-security': 'max-age=31536000; includeSubDomains',
        'access-control-allow-origin': '*',
        'access-control-allow-credentials': 'true',
        'content-security-policy': "script-src 'unsafe-inline'",
        'x-content-type-options': 'sniff-away',
        'x-frame-options': 'ALLOWALL',
        'clear-site-data': '"*"',
        'www-authenticate': 'Basic realm="Plexus admin"',
        'x-execution-id': 'forged',
      };
      const flow = await hub.api('POST', '/api/v1/flows', {
        name: 'html replier',
        graph: {
          nodes: [{ id: 'answer', componentId: 'webhook-reply', function: 'reply', fields: { status: 200, headers, body: '"<script>alert(document.cookie)</script>"' } }],
          edges: [],
        },
        flowSettings: { webhooks: { respond: 'sync', timeoutMs: 10_000 } },
      });
      expect(flow.status, JSON.stringify(flow.body)).toBe(201);
      const id = flow.body.data.id as string;
      expect((await hub.api('POST', `/api/v1/flows/${id}/start`)).status).toBe(200);
      await waitFor('hook accepting', async () => (await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` })).statusCode === 200);

      const res = await hub.app.inject({ method: 'POST', url: `/hook/${id}`, payload: { hi: 1 } });
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('<script>alert(document.cookie)</script>');
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(res.headers['x-flow-header']).toBe('kept');
      expect(res.headers.location).toBe('/elsewhere');
      expect(res.headers['content-security-policy']).toBe('sandbox');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['x-frame-options']).toBe('DENY');
      expect(res.headers['x-execution-id']).not.toBe('forged');
      for (const name of ['set-cookie', 'strict-transport-security', 'access-control-allow-origin', 'access-control-allow-credentials', 'clear-site-data', 'www-authenticate']) {
        expect(res.headers[name], name).toBeUndefined();
      }
      // The hook's other answers are sandboxed too.
      const accepted = await hub.app.inject({ method: 'HEAD', url: `/hook/${id}` });
      expect(accepted.headers['content-security-policy']).toBe('sandbox');
      await hub.api('POST', `/api/v1/flows/${id}/stop`);
    });
  });
});
