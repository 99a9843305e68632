/**
 * What the cockpit watches executions and flows with, through the public HTTP surface: the
 * server-sent event streams of changed executions and flow statuses (tenant-scoped,
 * permission-checked), the per-minute
 * throughput / failure / p99 figures, and the list's time filter. On PGlite and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { createAndStart, startSink, trigger, waitForExecution, type Sink } from '../helpers/engine.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';

interface SseEvent {
  event: string;
  data: unknown;
}

/** An open event stream: its events as they come, and a way to wait for one. */
interface EventStream {
  events: SseEvent[];
  next(match: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): void;
}

async function openStream(url: string, token: string): Promise<{ status: number; stream?: EventStream; body?: unknown }> {
  const abort = new AbortController();
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: abort.signal });
  if (res.status !== 200) return { status: res.status, body: await res.json() };
  const events: SseEvent[] = [];
  const waiters: Array<() => void> = [];
  void (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event && data !== undefined) events.push({ event, data: JSON.parse(data) });
          for (const w of waiters.splice(0)) w();
        }
      }
    } catch {
      /* aborted */
    }
  })();
  const stream: EventStream = {
    events,
    async next(match, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = events.find(match);
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(events)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
    },
    close: () => abort.abort(),
  };
  return { status: 200, stream };
}

describe.each(dbTargets)('watching executions on %s', (target) => {
  let hub: TestHub;
  let base: string;
  let sink: Sink;
  let otherTenantToken: string;
  let noReadToken: string;

  beforeAll(async () => {
    hub = await createTestHub({ target });
    base = await hub.listen();
    sink = await startSink();
    expect((await hub.api('POST', '/api/v1/tenants', { id: 'other', name: 'Other' })).status).toBe(201);
    expect((await hub.api('POST', '/api/v1/users', { username: 'olga', password: 'olga-password', tenant: 'other', permissions: ['tenant.all'] })).status).toBe(201);
    expect((await hub.api('POST', '/api/v1/users', { username: 'nora', password: 'nora-password', permissions: ['flows.read'] })).status).toBe(201);
    otherTenantToken = await hub.login('olga', 'olga-password', 'other');
    noReadToken = await hub.login('nora', 'nora-password');
  }, 60_000);

  let closed = false;
  afterAll(async () => {
    if (!closed) await hub?.close();
    await sink?.close();
  });

  const pipeline = () => ({
    nodes: [
      { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"n": n}' } },
      { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url }, nodeSettings: { retries: 0 } },
    ],
    edges: [{ source: 'shape', target: 'send' }],
  });

  it('streams the tenant’s changed executions as server-sent events, and no other tenant’s', async () => {
    const flowId = await createAndStart(hub, pipeline());
    const mine = await openStream(`${base}/api/v1/executions/live`, hub.adminToken);
    const filtered = await openStream(`${base}/api/v1/executions/live?filter[flowId]=${flowId}`, hub.adminToken);
    const theirs = await openStream(`${base}/api/v1/executions/live`, otherTenantToken);
    try {
      await mine.stream!.next((e) => e.event === 'ready');
      await filtered.stream!.next((e) => e.event === 'ready');
      await theirs.stream!.next((e) => e.event === 'ready');
      const executionId = await trigger(hub, flowId, { n: 1 });
      expect((await mine.stream!.next((e) => e.event === 'execution' && (e.data as { id: string }).id === executionId)).data).toEqual({ id: executionId, flowId });
      await filtered.stream!.next((e) => e.event === 'execution' && (e.data as { id: string }).id === executionId);
      await waitForExecution(hub, executionId);
      // The other tenant's stream was open all along and heard nothing of ours.
      expect(theirs.stream!.events.filter((e) => e.event === 'execution')).toEqual([]);
    } finally {
      mine.stream?.close();
      filtered.stream?.close();
      theirs.stream?.close();
    }
  });

  it('streams the status changes of the tenant’s flows (starting, active, stopping, inactive)', async () => {
    const flows = await openStream(`${base}/api/v1/flows/live`, hub.adminToken);
    const theirs = await openStream(`${base}/api/v1/flows/live`, otherTenantToken);
    try {
      await flows.stream!.next((e) => e.event === 'ready');
      await theirs.stream!.next((e) => e.event === 'ready');
      const flowId = await createAndStart(hub, pipeline());
      const statusOf = (s: string) => (e: SseEvent) => e.event === 'flow' && (e.data as { id: string; status: string }).id === flowId && (e.data as { status: string }).status === s;
      await flows.stream!.next(statusOf('starting'));
      await flows.stream!.next(statusOf('active'));
      await hub.api('POST', `/api/v1/flows/${flowId}/stop`);
      await flows.stream!.next(statusOf('stopping'));
      await flows.stream!.next(statusOf('inactive'));
      expect(theirs.stream!.events.filter((e) => e.event === 'flow')).toEqual([]);
    } finally {
      flows.stream?.close();
      theirs.stream?.close();
    }
  });

  it('refuses the stream without a token (401), without executions.read (403) and to a client not asking for events (406)', async () => {
    const none = await fetch(`${base}/api/v1/executions/live`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { errors: Array<{ code: string }> }).errors[0]!.code).toBe('UNAUTHENTICATED');
    const plain = await hub.api('GET', '/api/v1/executions/live');
    expect(plain.status).toBe(406);
    expect(plain.body.errors[0]).toMatchObject({ code: 'NOT_ACCEPTABLE', message: expect.stringContaining('Accept: text/event-stream') });
    const denied = await openStream(`${base}/api/v1/executions/live`, noReadToken);
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({ errors: [{ code: 'FORBIDDEN' }] });
  });

  it('counts executions, failures and the p99 duration per minute, per flow and in total', async () => {
    const flowId = await createAndStart(hub, pipeline());
    sink.respond(200);
    const ok = await trigger(hub, flowId, { n: 1 });
    await waitForExecution(hub, ok);
    sink.respond(400, { error: 'no' });
    const bad = await trigger(hub, flowId, { n: 2 });
    expect((await waitForExecution(hub, bad)).status).toBe('failed');
    sink.respond(200);

    const res = await hub.api('GET', `/api/v1/executions/stats?filter[flowId]=${flowId}&minutes=5`);
    expect(res.status).toBe(200);
    const stats = res.body.data;
    expect(stats.total).toMatchObject({ executions: 2, failures: 1 });
    expect(stats.total.p99Ms).toBeGreaterThanOrEqual(0);
    expect(stats.flows).toEqual([{ flowId, executions: 2, failures: 1, p99Ms: stats.total.p99Ms }]);
    expect(stats.buckets).toHaveLength(5);
    expect(stats.buckets.reduce((n: number, b: { executions: number }) => n + b.executions, 0)).toBe(2);
    // Another tenant sees none of it.
    const theirs = await hub.api('GET', `/api/v1/executions/stats?filter[flowId]=${flowId}`, undefined, otherTenantToken);
    expect(theirs.body.data.total).toEqual({ executions: 0, failures: 0, p99Ms: null });
    expect((await hub.api('GET', '/api/v1/executions/stats?minutes=0')).status).toBe(400);
  });

  it('filters the execution list by start time', async () => {
    const flowId = await createAndStart(hub, pipeline());
    const before = new Date(Date.now() - 1_000).toISOString();
    const id = await trigger(hub, flowId, { n: 3 });
    await waitForExecution(hub, id);
    const ids = async (q: string): Promise<string[]> => (await hub.api('GET', `/api/v1/executions?filter[flowId]=${flowId}&${q}`)).body.data.map((x: { id: string }) => x.id);
    expect(await ids(`filter[from]=${encodeURIComponent(before)}`)).toEqual([id]);
    expect(await ids(`filter[to]=${encodeURIComponent(before)}`)).toEqual([]);
    const bad = await hub.api('GET', '/api/v1/executions?filter[from]=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].message).toContain('filter[from]');
  });

  // Last: it stops the hub.
  it('ends open streams when the hub stops, so stopping does not hang', async () => {
    const open = await openStream(`${base}/api/v1/executions/live`, hub.adminToken);
    await open.stream!.next((e) => e.event === 'ready');
    closed = true;
    let timer: NodeJS.Timeout | undefined;
    const stopped = await Promise.race([
      hub.close().then(() => 'stopped'),
      new Promise((resolve) => (timer = setTimeout(() => resolve('still open'), 20_000))),
    ]).finally(() => clearTimeout(timer));
    open.stream!.close();
    expect(stopped).toBe('stopped');
  });
});
