/**
 * Per-tenant limits through the public surface: the limits API (platform admin only), webhook
 * calls and bytes per second and bodies in flight at `/hook/:flowId`, executions running at once
 * and messages per execution through real executions, and a change made on one process in force
 * on another within a second.
 */
import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAndStart, type ExecutionView, type FlowSpec } from '../helpers/engine.js';
import { waitFor } from '../helpers/flows.js';
import type { Hub } from '../../src/entrypoints/hub.js';
import { createHubsOnOneDatabase, createTestHub, TEST_ADMIN_PASSWORD, type TestHub } from '../helpers/hub.js';
import { hasPostgres } from '../helpers/services.js';

const DEFAULTS = {
  webhookRequestsPerSecond: 1_000,
  webhookBytesPerSecond: 10 * 1024 * 1024,
  webhookInFlightBytes: 1024 * 1024,
  concurrentExecutions: 50,
  messagesPerExecution: 5_000,
  codeSlots: 2,
};
const PROCESS_IN_FLIGHT_BYTES = 64 * 1024;

const logFlow: FlowSpec = {
  nodes: [{ id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } }],
  edges: [],
};

/** A tenant with an admin of its own (`tenant.all`), logged in. */
async function createTenant(hub: TestHub, id: string): Promise<string> {
  expect((await hub.api('POST', '/api/v1/tenants', { id, name: id })).status).toBe(201);
  const password = `${id}-password-1`;
  const user = await hub.api('POST', '/api/v1/users', { username: `${id}-admin`, password, tenant: id, permissions: ['tenant.all'] });
  expect(user.status, JSON.stringify(user.body)).toBe(201);
  return hub.login(`${id}-admin`, password, id);
}

async function setLimits(hub: TestHub, tenant: string, overrides: Record<string, number>): Promise<void> {
  const res = await hub.api('PUT', `/api/v1/tenants/${tenant}/limits`, overrides);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

async function hook(hub: TestHub, flowId: string, payload: string | Buffer = '{}'): Promise<{ status: number; body: any; headers: Record<string, unknown> }> {
  const res = await hub.app.inject({ method: 'POST', url: `/hook/${flowId}`, payload, headers: { 'content-type': 'application/json' } });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined, headers: res.headers };
}

async function executionOf(hub: TestHub, id: string, token: string, timeoutMs = 30_000): Promise<ExecutionView> {
  return waitFor(
    `execution ${id} to end`,
    async () => {
      const res = await hub.api('GET', `/api/v1/executions/${id}`, undefined, token);
      return res.status === 200 && res.body.data.status !== 'running' ? (res.body.data as ExecutionView) : undefined;
    },
    timeoutMs,
    50,
  );
}

/** A raw HTTP/1.1 request over a socket, written in parts the test controls. */
function openUpload(base: string, path: string, headers: Record<string, string>): { socket: net.Socket; answer: Promise<{ status: number; text: string }> } {
  const { hostname, port } = new URL(base);
  const socket = net.connect({ host: hostname, port: Number(port) });
  socket.write(`POST ${path} HTTP/1.1\r\nHost: ${hostname}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
  const answer = new Promise<{ status: number; text: string }>((resolve) => {
    let text = '';
    socket.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      if (m && text.includes('\r\n\r\n')) resolve({ status: Number(m[1]), text });
    });
    socket.on('error', () => resolve({ status: -1, text }));
  });
  return { socket, answer };
}

function chunk(bytes: number): string {
  return `${bytes.toString(16)}\r\n${'x'.repeat(bytes)}\r\n`;
}

describe('tenant limits (embedded)', () => {
  let hub: TestHub;
  let base: string;
  let acme: string;
  let globex: string;
  let acmeFlow: string;
  let globexFlow: string;
  /** Answers POST /<tenant> after 300 ms, and records how many it held at once per tenant. */
  let slow: http.Server;
  let slowUrl: string;
  const holding = new Map<string, number>();
  const mostHeld = new Map<string, number>();

  beforeAll(async () => {
    hub = await createTestHub({
      env: {
        PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND: String(DEFAULTS.webhookRequestsPerSecond),
        PLEXUS_LIMITS_WEBHOOK_BYTES_PER_SECOND: String(DEFAULTS.webhookBytesPerSecond),
        PLEXUS_LIMITS_WEBHOOK_IN_FLIGHT_BYTES: String(DEFAULTS.webhookInFlightBytes),
        PLEXUS_LIMITS_CONCURRENT_EXECUTIONS: String(DEFAULTS.concurrentExecutions),
        PLEXUS_LIMITS_MESSAGES_PER_EXECUTION: String(DEFAULTS.messagesPerExecution),
        PLEXUS_LIMITS_CODE_SLOTS: String(DEFAULTS.codeSlots),
        PLEXUS_WEBHOOK_IN_FLIGHT_BYTES: String(PROCESS_IN_FLIGHT_BYTES),
        // The slow application below listens on loopback: reached through the test hub's allow-list.
      },
    });
    base = await hub.listen();
    acme = await createTenant(hub, 'acme');
    globex = await createTenant(hub, 'globex');
    acmeFlow = await createAndStart(hub, logFlow, acme);
    globexFlow = await createAndStart(hub, logFlow, globex);
    slow = http.createServer((req, res) => {
      const tenant = (req.url ?? '/').slice(1);
      holding.set(tenant, (holding.get(tenant) ?? 0) + 1);
      mostHeld.set(tenant, Math.max(mostHeld.get(tenant) ?? 0, holding.get(tenant)!));
      req.resume();
      setTimeout(() => {
        holding.set(tenant, holding.get(tenant)! - 1);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      }, 300);
    });
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
    slowUrl = `http://127.0.0.1:${(slow.address() as net.AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await hub?.close();
    await new Promise((r) => slow?.close(r));
  });

  describe('API', () => {
    it('shows the configured defaults, takes overrides, and {} puts them back', async () => {
      const initial = await hub.api('GET', '/api/v1/tenants/acme/limits');
      expect(initial.status).toBe(200);
      expect(initial.body.data).toEqual({ tenant: 'acme', limits: DEFAULTS, overrides: {}, defaults: DEFAULTS, updatedAt: null });

      const put = await hub.api('PUT', '/api/v1/tenants/acme/limits', { concurrentExecutions: 3, codeSlots: 1 });
      expect(put.status).toBe(200);
      expect(put.body.data.limits).toEqual({ ...DEFAULTS, concurrentExecutions: 3, codeSlots: 1 });
      expect(put.body.data.overrides).toEqual({ concurrentExecutions: 3, codeSlots: 1 });
      expect((await hub.api('GET', '/api/v1/tenants/acme/limits')).body.data.overrides).toEqual({ concurrentExecutions: 3, codeSlots: 1 });
      expect(hub.limits.service.codeSlotsFor('acme')).toBe(1);
      expect(hub.limits.service.codeSlotsFor('globex')).toBe(2);

      const reset = await hub.api('PUT', '/api/v1/tenants/acme/limits', {});
      expect(reset.body.data).toMatchObject({ limits: DEFAULTS, overrides: {}, updatedAt: null });

      // The audit module stores its records as they arrive on the bus.
      await waitFor('both audit records', async () => {
        const audit = await hub.api('GET', '/api/v1/audit?filter[module]=limits&filter[tenant]=acme');
        const names = (audit.body.data as Array<{ name: string }>).map((r) => r.name);
        return names.includes('audit.limits.updated') && names.includes('audit.limits.reset');
      });
    });

    it('answers 400 naming a bad value, 404 for an unknown tenant, 403 to anyone but a platform admin', async () => {
      const zero = await hub.api('PUT', '/api/v1/tenants/acme/limits', { webhookRequestsPerSecond: 0 });
      expect(zero.status).toBe(400);
      expect(zero.body.errors[0].message).toContain('webhookRequestsPerSecond');
      const unknown = await hub.api('PUT', '/api/v1/tenants/acme/limits', { cpuSeconds: 5 });
      expect(unknown.status).toBe(400);
      expect(unknown.body.errors[0].message).toContain('cpuSeconds');
      const fraction = await hub.api('PUT', '/api/v1/tenants/acme/limits', { messagesPerExecution: 1.5 });
      expect(fraction.status).toBe(400);

      expect((await hub.api('GET', '/api/v1/tenants/nope/limits')).body.errors[0].code).toBe('TENANT_NOT_FOUND');
      expect((await hub.api('PUT', '/api/v1/tenants/nope/limits', {})).status).toBe(404);
      expect((await hub.api('GET', '/api/v1/tenants/bad%00id/limits')).status).toBe(400);

      // A tenant admin may not read or raise its own limits.
      expect((await hub.api('GET', '/api/v1/tenants/acme/limits', undefined, acme)).status).toBe(403);
      expect((await hub.api('PUT', '/api/v1/tenants/acme/limits', { webhookRequestsPerSecond: 1_000_000 }, acme)).status).toBe(403);
      expect(hub.limits.service.forTenant('acme').webhookRequestsPerSecond).toBe(DEFAULTS.webhookRequestsPerSecond);
    });
  });

  describe('webhook calls', () => {
    it('answers 429 with Retry-After past the tenant rate, while another tenant is served', async () => {
      await setLimits(hub, 'acme', { webhookRequestsPerSecond: 3 });
      const answers = await Promise.all(Array.from({ length: 12 }, () => hook(hub, acmeFlow)));
      const others = await Promise.all(Array.from({ length: 12 }, () => hook(hub, globexFlow)));
      const limited = answers.filter((a) => a.status === 429);
      expect(answers.filter((a) => a.status === 202).length).toBeGreaterThanOrEqual(3);
      expect(limited.length).toBeGreaterThanOrEqual(6);
      expect(limited[0]!.headers['retry-after']).toBe('1');
      expect(limited[0]!.body.errors[0]).toMatchObject({ code: 'RATE_LIMITED', details: { limit: 'webhookRequestsPerSecond' } });
      expect(others.every((a) => a.status === 202)).toBe(true);
      await setLimits(hub, 'acme', {});
    });

    it('answers 429 past the tenant byte rate, counting the Content-Length before reading', async () => {
      await setLimits(hub, 'acme', { webhookBytesPerSecond: 4_096 });
      const body = JSON.stringify({ pad: 'x'.repeat(3_000) });
      expect((await hook(hub, acmeFlow, body)).status).toBe(202);
      const second = await hook(hub, acmeFlow, body);
      expect(second.status).toBe(429);
      expect(second.body.errors[0].details.limit).toBe('webhookBytesPerSecond');
      expect(Number(second.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect((await hook(hub, globexFlow, body)).status).toBe(202);
      await setLimits(hub, 'acme', {});
    });

    it('answers 413 for a body larger than the tenant in-flight budget, with or without Content-Length', async () => {
      await setLimits(hub, 'acme', { webhookInFlightBytes: 8_192 });
      const big = await hook(hub, acmeFlow, JSON.stringify({ pad: 'x'.repeat(9_000) }));
      expect(big.status).toBe(413);
      expect(big.body.errors[0].message).toContain('webhookInFlightBytes');

      const { socket, answer } = openUpload(base, `/hook/${acmeFlow}`, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
      socket.write(chunk(5_000));
      socket.write(chunk(5_000));
      const streamed = await answer;
      socket.destroy();
      expect(streamed.status).toBe(413);
      expect(streamed.text).toContain('so far');
      await setLimits(hub, 'acme', {});
    });

    it('answers 429 while the tenant bodies in flight fill its budget, and takes the call once they are stored', async () => {
      await setLimits(hub, 'acme', { webhookInFlightBytes: 8_192 });
      // 6,000 bytes arrive and the rest does not come yet: they are in flight.
      const first = openUpload(base, `/hook/${acmeFlow}`, { 'content-type': 'text/plain', 'content-length': '6010' });
      first.socket.write('x'.repeat(6_000));
      await waitFor('bytes in flight', async () => hub.limits.ingress.inFlight('acme') > 0);
      const refused = await hook(hub, acmeFlow, JSON.stringify({ pad: 'x'.repeat(4_000) }));
      expect(refused.status).toBe(429);
      expect(refused.body.errors[0].details.limit).toBe('webhookInFlightBytes');
      // Another tenant's budget is its own.
      expect((await hook(hub, globexFlow, JSON.stringify({ pad: 'x'.repeat(4_000) }))).status).toBe(202);

      first.socket.write('x'.repeat(10));
      expect((await first.answer).status).toBe(202);
      first.socket.destroy();
      await waitFor('bytes released', async () => hub.limits.ingress.inFlight('acme') === 0);
      expect((await hook(hub, acmeFlow, JSON.stringify({ pad: 'x'.repeat(4_000) }))).status).toBe(202);
      await setLimits(hub, 'acme', {});
    });

    it('answers 503 when all tenants bodies in flight fill the process budget', async () => {
      const held = openUpload(base, `/hook/${globexFlow}`, { 'content-type': 'text/plain', 'content-length': String(PROCESS_IN_FLIGHT_BYTES - 1_000) });
      held.socket.write('x'.repeat(100));
      await waitFor('bytes in flight', async () => hub.limits.ingress.inFlight() > 0);
      const refused = await hook(hub, acmeFlow, JSON.stringify({ pad: 'x'.repeat(2_000) }));
      expect(refused.status).toBe(503);
      expect(refused.headers['retry-after']).toBe('1');
      expect(refused.body.errors[0].message).toContain('PLEXUS_WEBHOOK_IN_FLIGHT_BYTES');
      // The held upload gives up: its bytes are released with its connection.
      held.socket.destroy();
      await waitFor('bytes released', async () => hub.limits.ingress.inFlight() === 0);
      expect((await hook(hub, acmeFlow, JSON.stringify({ pad: 'x'.repeat(2_000) }))).status).toBe(202);
    });
  });

  describe('executions', () => {
    /** receive → call the slow application (300 ms) at /<tenant>. */
    const slowFlow = (tenant: string): FlowSpec => ({
      nodes: [
        { id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } },
        { id: 'call', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: `${slowUrl}/${tenant}` } },
      ],
      edges: [{ source: 'receive', target: 'call' }],
    });

    it("runs a tenant's executions one at a time at concurrentExecutions 1, while another tenant's run side by side", async () => {
      await setLimits(hub, 'acme', { concurrentExecutions: 1 });
      const acmeSlow = await createAndStart(hub, slowFlow('acme'), acme);
      const globexSlow = await createAndStart(hub, slowFlow('globex'), globex);
      const started = Date.now();
      const [acmeCalls, globexCalls] = await Promise.all([
        Promise.all(Array.from({ length: 4 }, () => hook(hub, acmeSlow))),
        Promise.all(Array.from({ length: 4 }, () => hook(hub, globexSlow))),
      ]);
      expect([...acmeCalls, ...globexCalls].every((a) => a.status === 202)).toBe(true);
      const globexDone = await Promise.all(globexCalls.map((c) => executionOf(hub, c.body.data.executionId, globex)));
      const globexMs = Date.now() - started;
      const acmeDone = await Promise.all(acmeCalls.map((c) => executionOf(hub, c.body.data.executionId, acme)));
      const acmeMs = Date.now() - started;
      expect([...acmeDone, ...globexDone].every((x) => x.status === 'succeeded')).toBe(true);
      expect(mostHeld.get('acme')).toBe(1);
      expect(mostHeld.get('globex')).toBeGreaterThan(1);
      // Four calls of 300 ms one after another take at least 1.2 s; side by side, far less.
      expect(acmeMs).toBeGreaterThanOrEqual(1_200);
      expect(globexMs).toBeLessThan(acmeMs);
      await setLimits(hub, 'acme', {});
    });

    /**
     * A fan-out of `outer` × `inner` messages. `spread`: the middle step is a 1 ms delay, so its
     * messages (delayed) each go on in a job of their own instead of inline in the trigger's.
     */
    const fanOut = (outer: number, inner: number, spread: boolean): FlowSpec => ({
      nodes: [
        { id: 'make', componentId: 'transform', function: 'jsonata', fields: { expression: `[1..${outer}]` } },
        { id: 'each', componentId: 'split', function: 'each' },
        spread ? { id: 'mid', componentId: 'delay', function: 'wait', fields: { delayMs: 1 } } : { id: 'mid', componentId: 'log', function: 'write', fields: { level: 'debug' } },
        { id: 'again', componentId: 'transform', function: 'jsonata', fields: { expression: `[1..${inner}]` } },
        { id: 'every', componentId: 'split', function: 'each' },
        { id: 'end', componentId: 'log', function: 'write', fields: { level: 'debug' } },
      ],
      edges: [
        { source: 'make', target: 'each' },
        { source: 'each', target: 'mid' },
        { source: 'mid', target: 'again' },
        { source: 'again', target: 'every' },
        { source: 'every', target: 'end' },
      ],
    });

    it('fails the step that takes an execution past messagesPerExecution, within one job', async () => {
      await setLimits(hub, 'acme', { messagesPerExecution: 200 });
      const flowId = await createAndStart(hub, fanOut(50, 50, false), acme);
      const call = await hook(hub, flowId, '{}');
      const x = await executionOf(hub, call.body.data.executionId, acme);
      expect(x.status).toBe('failed');
      const failed = x.steps.filter((s) => s.status === 'failed');
      expect(failed.length).toBeGreaterThan(0);
      expect(failed[0]!.error).toContain('more than 200 messages');
      expect(failed[0]!.error).toContain('messagesPerExecution');
      // Without the limit this execution makes 50 × 52 + 3 step runs.
      expect(x.steps.filter((s) => s.status === 'succeeded').length).toBeLessThanOrEqual(201);
      await setLimits(hub, 'acme', {});
    });

    it('fails it as well when the messages are produced by many jobs of the execution', async () => {
      await setLimits(hub, 'acme', { messagesPerExecution: 200 });
      const flowId = await createAndStart(hub, fanOut(20, 20, true), acme);
      const call = await hook(hub, flowId, '{}');
      const x = await executionOf(hub, call.body.data.executionId, acme);
      expect(x.status).toBe('failed');
      const failed = x.steps.filter((s) => s.status === 'failed');
      expect(failed.length).toBeGreaterThan(0);
      // Refused at the commit of a job of their own: the limit is met across jobs, not within one.
      expect(failed.filter((s) => !['mid', 'again'].includes(s.nodeId) || !(s.error ?? '').includes('messagesPerExecution'))).toEqual([]);
      // The trigger's job routes 22 messages, each `mid` job 1, each `again` job 21: at most 8 `again` jobs fit in 200.
      expect(x.steps.filter((s) => s.nodeId === 'again' && s.status === 'succeeded').length).toBeLessThanOrEqual(8);
      expect(x.steps.filter((s) => s.status === 'succeeded').length).toBeLessThanOrEqual(200);
      await setLimits(hub, 'acme', {});
    });

    it('runs the same fan-out to the end when it stays within the limit', async () => {
      await setLimits(hub, 'acme', { messagesPerExecution: 461 });
      const flowId = await createAndStart(hub, fanOut(20, 20, true), acme);
      const call = await hook(hub, flowId, '{}');
      const x = await executionOf(hub, call.body.data.executionId, acme);
      expect(x.status).toBe('succeeded');
      expect(x.steps.filter((s) => s.nodeId === 'end').length).toBe(400);
      await setLimits(hub, 'acme', {});
    });
  });
});

describe.runIf(hasPostgres)('tenant limits on two processes (PostgreSQL)', () => {
  it('a limit set through one process is in force for webhook calls on the other within a second', async () => {
    const group = await createHubsOnOneDatabase(2, { adminPassword: TEST_ADMIN_PASSWORD, serviceName: 'limits-e2e' });
    try {
      const [one, two] = group.hubs as [Hub, Hub];
      const login = await one.app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'admin', password: TEST_ADMIN_PASSWORD } });
      const token = (JSON.parse(login.body) as { token: string }).token;
      const api = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object) => {
        const res = await one.app.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(payload ? { payload } : {}) });
        return { status: res.statusCode, body: JSON.parse(res.body || '{}') };
      };
      const flow = await api('POST', '/api/v1/flows', { name: 'limits', graph: logFlow, flowSettings: { webhooks: { auth: 'none' } } });
      const flowId = flow.body.data.id as string;
      expect((await api('POST', `/api/v1/flows/${flowId}/start`)).status).toBe(200);
      const call = () => two.app.inject({ method: 'POST', url: `/hook/${flowId}`, payload: '{}', headers: { 'content-type': 'application/json' } });
      await waitFor('hook accepting on the second process', async () => (await call()).statusCode === 202);

      expect((await api('PUT', '/api/v1/tenants/default/limits', { webhookRequestsPerSecond: 1 })).status).toBe(200);
      const changedAt = Date.now();
      await waitFor('the second process to apply the limit', async () => two.limits.service.forTenant('default').webhookRequestsPerSecond === 1, 1_000, 5);
      expect(Date.now() - changedAt).toBeLessThan(1_000);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await call()).statusCode);
      expect(statuses).toContain(429);
    } finally {
      await group.close();
    }
  });
});
