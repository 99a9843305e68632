/**
 * Helpers for execution-engine tests: a sink server standing in for the application a flow calls,
 * and the user's path through the API — create and start a flow, call its webhook, wait for the
 * execution to end.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'vitest';
import type { TestHub } from './hub.js';
import { waitFor } from './flows.js';

export interface SinkRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: unknown;
  at: number;
}

export interface Sink {
  base: string;
  url: string;
  requests: SinkRequest[];
  /** The answer to the next requests: status (default 200), body, headers. */
  respond(status: number, body?: unknown, headers?: Record<string, string>): void;
  /** The answer computed from each request. */
  respondWith(fn: (req: SinkRequest) => { status: number; body?: unknown; headers?: Record<string, string> }): void;
  /** Answers this much later (a slow application). */
  delay(ms: number): void;
  close(): Promise<void>;
}

export async function startSink(): Promise<Sink> {
  const requests: SinkRequest[] = [];
  let answer: { status: number; body: unknown; headers: Record<string, string> } = { status: 200, body: { ok: true }, headers: {} };
  let compute: ((req: SinkRequest) => { status: number; body?: unknown; headers?: Record<string, string> }) | undefined;
  let delayMs = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        /* kept as text */
      }
      const seen = { method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() };
      requests.push(seen);
      const a = compute ? { headers: {}, ...compute(seen) } : answer;
      const send = (): void => void res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers }).end(JSON.stringify(a.body ?? null));
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    url: `${base}/orders`,
    requests,
    respond(status, body = { ok: status < 400 }, headers = {}) {
      compute = undefined;
      answer = { status, body, headers };
    },
    respondWith(fn) {
      compute = fn;
    },
    delay(ms) {
      delayMs = ms;
    },
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface FlowNodeSpec {
  id: string;
  componentId: string;
  function: string;
  fields?: Record<string, unknown>;
  nodeSettings?: Record<string, unknown>;
  credentialsId?: string;
}

export interface FlowSpec {
  nodes: FlowNodeSpec[];
  edges: Array<{ source: string; target: string; config?: { condition?: string; mapper?: string } }>;
  flowSettings?: Record<string, unknown>;
  name?: string;
}

/** Creates a flow through the API (webhook without auth unless said otherwise); returns its id. */
export async function createFlow(hub: TestHub, spec: FlowSpec, token?: string): Promise<string> {
  const res = await hub.api(
    'POST',
    '/api/v1/flows',
    { name: spec.name ?? 'test flow', graph: { nodes: spec.nodes, edges: spec.edges }, flowSettings: spec.flowSettings ?? { webhooks: { auth: 'none' } } },
    token,
  );
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.data.id as string;
}

export async function flowStatus(hub: TestHub, flowId: string, token?: string): Promise<{ status: string; statusReason?: string }> {
  const res = await hub.api('GET', `/api/v1/flows/${flowId}`, undefined, token);
  return res.body.data as { status: string; statusReason?: string };
}

export async function startFlow(hub: TestHub, flowId: string, token?: string): Promise<void> {
  const res = await hub.api('POST', `/api/v1/flows/${flowId}/start`, undefined, token);
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  await waitFor(`flow ${flowId} active`, async () => (await flowStatus(hub, flowId, token)).status === 'active');
}

export async function stopFlow(hub: TestHub, flowId: string, token?: string): Promise<void> {
  const res = await hub.api('POST', `/api/v1/flows/${flowId}/stop`, undefined, token);
  expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
  await waitFor(`flow ${flowId} inactive`, async () => (await flowStatus(hub, flowId, token)).status === 'inactive');
}

export async function createAndStart(hub: TestHub, spec: FlowSpec, token?: string): Promise<string> {
  const id = await createFlow(hub, spec, token);
  await startFlow(hub, id, token);
  return id;
}

/** Calls the flow's webhook with a JSON body; returns the execution id. */
export async function trigger(hub: TestHub, flowId: string, body: unknown): Promise<string> {
  const res = await hub.api('POST', `/hook/${flowId}`, body, null);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.data.executionId as string;
}

export interface ExecutionView {
  id: string;
  flowId: string;
  status: 'running' | 'succeeded' | 'failed';
  trigger: string;
  pendingSteps: number;
  failedSteps: number;
  stepRuns: number;
  finishedAt: string | null;
  steps: Array<{
    nodeId: string;
    path: string;
    idempotencyKey: string;
    status: string;
    attempt: number;
    rebounds: number;
    input: unknown;
    output: unknown;
    emitted: number;
    error: string | null;
    durationMs: number;
  }>;
}

export async function getExecution(hub: TestHub, id: string, token?: string): Promise<ExecutionView | undefined> {
  const res = await hub.api('GET', `/api/v1/executions/${id}`, undefined, token);
  return res.status === 200 ? (res.body.data as ExecutionView) : undefined;
}

/** Waits until the execution has ended (succeeded or failed). */
export async function waitForExecution(hub: TestHub, id: string, timeoutMs = 15_000): Promise<ExecutionView> {
  return waitFor(`execution ${id} to end`, async () => {
    const x = await getExecution(hub, id);
    return x && x.status !== 'running' ? x : undefined;
  }, timeoutMs, 25);
}

/** The step runs of one node, in path order. */
export function stepsOf(x: ExecutionView, nodeId: string): ExecutionView['steps'] {
  return x.steps.filter((s) => s.nodeId === nodeId).sort((a, b) => (a.path < b.path ? -1 : 1));
}
