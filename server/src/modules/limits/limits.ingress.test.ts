import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { TenantLimits } from '../../contracts/limits.js';
import { AppError } from '../../platform/errors.js';
import { TokenBucket, WebhookIngress } from './limits.ingress.js';

const BASE: TenantLimits = {
  webhookRequestsPerSecond: 1_000,
  webhookBytesPerSecond: 1024 * 1024,
  webhookInFlightBytes: 10_000,
  concurrentExecutions: 10,
  messagesPerExecution: 1_000,
  codeSlots: 1,
};

/** An ingress on a clock the test moves, with per-tenant limits the test sets. */
function ingressWith(limits: Record<string, Partial<TenantLimits>>, totalBudget = 1_000_000) {
  let now = 0;
  const objects = new Map<string, TenantLimits>();
  const limitsOf = (tenant: string): TenantLimits => {
    let l = objects.get(tenant);
    if (!l) objects.set(tenant, (l = { ...BASE, ...limits[tenant] }));
    return l;
  };
  const ingress = new WebhookIngress(limitsOf, totalBudget, () => now);
  return {
    ingress,
    advance: (ms: number) => (now += ms),
    change: (tenant: string, l: Partial<TenantLimits>) => objects.set(tenant, { ...BASE, ...l }),
  };
}

const noBody = { contentLength: undefined, chunked: false, body: new PassThrough() };
const sized = (n: number) => ({ contentLength: n, chunked: false, body: new PassThrough() });

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe('TokenBucket', () => {
  it('gives up to its capacity at once, then refills at its rate', () => {
    const b = new TokenBucket(10, 10, 0);
    for (let i = 0; i < 10; i++) expect(b.take(1, 0)).toBe(0);
    expect(b.take(1, 0)).toBe(100);
    expect(b.take(1, 100)).toBe(0);
    expect(b.take(1, 100)).toBe(100);
  });

  it('lets a take larger than the bucket through when full, and makes the next ones wait for the overdraft', () => {
    const b = new TokenBucket(1_000, 1_000, 0);
    expect(b.take(5_000, 0)).toBe(0);
    // 4,000 owed + 1 wanted at 1,000 per second.
    expect(b.take(1, 0)).toBe(4_001);
    expect(b.take(1, 4_001)).toBe(0);
  });
});

describe('WebhookIngress', () => {
  it('refuses calls over the tenant rate with 429 and Retry-After, and lets them through again once refilled', () => {
    const { ingress, advance } = ingressWith({ a: { webhookRequestsPerSecond: 2 } });
    ingress.admit('a', noBody);
    ingress.admit('a', noBody);
    const err = refusal(() => ingress.admit('a', noBody));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.status).toBe(429);
    expect(err.details).toMatchObject({ limit: 'webhookRequestsPerSecond', retryAfterSeconds: 1 });
    expect(err.message).toContain('2 calls per second');
    advance(500);
    ingress.admit('a', noBody);
  });

  it('keeps tenants apart: one at its rate does not slow another', () => {
    const { ingress } = ingressWith({ a: { webhookRequestsPerSecond: 1 } });
    ingress.admit('a', noBody);
    expect(refusal(() => ingress.admit('a', noBody)).code).toBe('RATE_LIMITED');
    for (let i = 0; i < 100; i++) ingress.admit('b', noBody).release();
  });

  it('refuses body bytes over the tenant byte rate, counting Content-Length up front', () => {
    const { ingress, advance } = ingressWith({ a: { webhookBytesPerSecond: 4_096 } });
    ingress.admit('a', sized(3_000)).release();
    const err = refusal(() => ingress.admit('a', sized(3_000)));
    expect(err.code).toBe('RATE_LIMITED');
    expect(err.details).toMatchObject({ limit: 'webhookBytesPerSecond' });
    // Refused before anything was held.
    expect(ingress.inFlight('a')).toBe(0);
    advance(1_000);
    ingress.admit('a', sized(3_000)).release();
  });

  it('holds bodies in flight until released: 429 while the tenant budget is full, 413 for a body larger than all of it', () => {
    const { ingress } = ingressWith({ a: { webhookInFlightBytes: 8_000 } });
    const first = ingress.admit('a', sized(5_000));
    expect(ingress.inFlight('a')).toBe(5_000);
    const busy = refusal(() => ingress.admit('a', sized(5_000)));
    expect(busy.code).toBe('RATE_LIMITED');
    expect(busy.details).toMatchObject({ limit: 'webhookInFlightBytes', retryAfterSeconds: 1 });
    // Another tenant has a budget of its own.
    ingress.admit('b', sized(5_000)).release();
    first.release();
    first.release();
    expect(ingress.inFlight('a')).toBe(0);
    ingress.admit('a', sized(5_000)).release();
    const huge = refusal(() => ingress.admit('a', sized(8_001)));
    expect(huge.code).toBe('PAYLOAD_TOO_LARGE');
    expect(huge.message).toContain('webhookInFlightBytes');
  });

  it('answers 503 when all tenants together fill the process budget', () => {
    const { ingress } = ingressWith({}, 9_000);
    const a = ingress.admit('a', sized(5_000));
    const err = refusal(() => ingress.admit('b', sized(5_000)));
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.status).toBe(503);
    expect(err.details).toMatchObject({ retryAfterSeconds: 1 });
    a.release();
    ingress.admit('b', sized(5_000)).release();
    expect(ingress.inFlight()).toBe(0);
  });

  it('counts a chunked body as it arrives and stops it as soon as it passes the budget', async () => {
    const { ingress } = ingressWith({ a: { webhookInFlightBytes: 4_096 } });
    const source = new PassThrough();
    const admitted = ingress.admit('a', { contentLength: undefined, chunked: true, body: source });
    const read = readAll(admitted.body);
    source.write(Buffer.alloc(3_000));
    await new Promise((r) => setImmediate(r));
    expect(ingress.inFlight('a')).toBe(3_000);
    source.write(Buffer.alloc(3_000));
    const err = await read.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('PAYLOAD_TOO_LARGE');
    expect((err as AppError).message).toContain('so far');
    expect(ingress.inFlight('a')).toBe(0);
  });

  it('passes a chunked body within the budget through unchanged', async () => {
    const { ingress } = ingressWith({});
    const source = new PassThrough();
    const admitted = ingress.admit('a', { contentLength: undefined, chunked: true, body: source });
    const read = readAll(admitted.body);
    source.end(Buffer.from('hello chunked world'));
    expect((await read).toString()).toBe('hello chunked world');
    expect(ingress.inFlight('a')).toBe(19);
    admitted.release();
    expect(ingress.inFlight('a')).toBe(0);
  });

  it('applies a changed limit to the next call', () => {
    const { ingress, change, advance } = ingressWith({});
    ingress.admit('a', sized(3_000)).release();
    change('a', { webhookInFlightBytes: 2_000 });
    expect(refusal(() => ingress.admit('a', sized(3_000))).code).toBe('PAYLOAD_TOO_LARGE');
    change('a', { webhookRequestsPerSecond: 1 });
    advance(1_000);
    ingress.admit('a', noBody);
    expect(refusal(() => ingress.admit('a', noBody)).code).toBe('RATE_LIMITED');
  });
});
