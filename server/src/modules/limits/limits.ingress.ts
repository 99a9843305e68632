/**
 * Webhook admission: per tenant, calls per second and body bytes per second (token buckets), and
 * body bytes in flight (per tenant and for all tenants together), checked before a body is read.
 *
 * Everything here is in memory and per process: a check costs a few map lookups, never a query.
 * With several webhooks processes a tenant may get up to that many times its rate; that is the
 * point of having several, and each process still protects its own CPU, memory and writes (see
 * README "Per process").
 *
 * In flight = bytes of bodies that started arriving and are not yet enqueued. A body with a
 * Content-Length reserves all of it up front, so a call that cannot fit is refused before a byte
 * is read; a chunked body is counted chunk by chunk as it arrives and refused as soon as it
 * passes a budget. The caller releases the reservation once the message is stored (or the
 * response ends, whichever comes first).
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { TenantLimits } from '../../contracts/limits.js';
import { AppError } from '../../platform/errors.js';

/** How long to tell a caller refused for in-flight bytes to wait: bodies in flight take about that. */
const IN_FLIGHT_RETRY_AFTER_S = 1;

/**
 * A token bucket refilled continuously at `rate` per second up to `capacity`. A take larger than
 * the capacity is allowed when the bucket is full and overdraws it, so the largest body still
 * passes and the average stays at the rate.
 */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    private rate: number,
    private capacity: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.at = now;
  }

  /** Changes rate and capacity, keeping what the bucket holds (at most the new capacity). */
  reset(rate: number, capacity: number): void {
    this.rate = rate;
    this.capacity = capacity;
    this.tokens = Math.min(this.tokens, capacity);
  }

  /** Takes `n` and returns 0, or takes nothing and returns the milliseconds until it could. */
  take(n: number, now: number): number {
    if (now > this.at) {
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.at) * this.rate) / 1_000);
      this.at = now;
    }
    const needed = Math.min(n, this.capacity);
    if (this.tokens >= needed) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil(((needed - this.tokens) * 1_000) / this.rate);
  }
}

/** What a webhooks route gets for one admitted call. */
export interface Admission {
  /** The body stream to read: the original one, or one that counts chunked bytes as they arrive. */
  body: Readable;
  /** Ends the call's claim on the in-flight budget; safe to call more than once. */
  release(): void;
}

/** The webhooks module's view of this module (wired in entrypoints/hub.ts). */
export interface WebhookAdmission {
  /**
   * Admits one call of `tenant` before its body is read, or throws: 429 `RATE_LIMITED` (calls
   * or bytes per second, or the tenant's in-flight bytes) with `retryAfterSeconds`; 413
   * `PAYLOAD_TOO_LARGE` for a body larger than the tenant's whole in-flight budget; 503
   * `UNAVAILABLE` when all tenants' bodies in flight fill this process's budget.
   * `contentLength` undefined with `chunked` true: a body of unknown length follows.
   */
  admit(tenant: string, request: { contentLength: number | undefined; chunked: boolean; body: Readable }): Admission;
}

interface TenantState {
  limits: TenantLimits;
  requests: TokenBucket;
  bytes: TokenBucket;
  inFlight: number;
}

function rateLimited(message: string, waitMs: number, details: Record<string, unknown>): AppError {
  return new AppError('RATE_LIMITED', message, 'user', { ...details, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1_000)) });
}

export class WebhookIngress implements WebhookAdmission {
  private readonly tenants = new Map<string, TenantState>();
  private inFlightTotal = 0;

  constructor(
    private readonly limitsOf: (tenant: string) => TenantLimits,
    private readonly inFlightBudgetTotal: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Bytes in flight: of one tenant, or of all. */
  inFlight(tenant?: string): number {
    return tenant === undefined ? this.inFlightTotal : (this.tenants.get(tenant)?.inFlight ?? 0);
  }

  admit(tenant: string, request: { contentLength: number | undefined; chunked: boolean; body: Readable }): Admission {
    const now = this.now();
    const st = this.stateOf(tenant, now);
    const wait = st.requests.take(1, now);
    if (wait > 0) {
      throw rateLimited(`tenant ${tenant} is over its webhook rate of ${st.limits.webhookRequestsPerSecond} calls per second (webhookRequestsPerSecond)`, wait, { limit: 'webhookRequestsPerSecond' });
    }
    const declared = request.contentLength ?? 0;
    if (declared > 0) {
      this.reserve(tenant, st, declared);
      const bytesWait = st.bytes.take(declared, now);
      if (bytesWait > 0) {
        this.unreserve(st, declared);
        throw this.bytesRateLimited(tenant, st, bytesWait);
      }
    }
    let held = declared;
    const release = (): void => {
      if (held === 0) return;
      this.unreserve(st, held);
      held = 0;
    };
    if (request.contentLength !== undefined || !request.chunked) return { body: request.body, release };

    // Unknown length: count each chunk as it arrives, against both budgets and the byte rate.
    const meter = new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) => {
        try {
          this.reserve(tenant, st, chunk.length, held + chunk.length);
          held += chunk.length;
          const bytesWait = st.bytes.take(chunk.length, this.now());
          if (bytesWait > 0) throw this.bytesRateLimited(tenant, st, bytesWait);
          done(null, chunk);
        } catch (err) {
          release();
          done(err as Error);
        }
      },
    });
    request.body.on('error', (err) => meter.destroy(err));
    request.body.pipe(meter);
    return { body: meter, release };
  }

  private stateOf(tenant: string, now: number): TenantState {
    const limits = this.limitsOf(tenant);
    let st = this.tenants.get(tenant);
    if (!st) {
      st = {
        limits,
        requests: new TokenBucket(limits.webhookRequestsPerSecond, limits.webhookRequestsPerSecond, now),
        bytes: new TokenBucket(limits.webhookBytesPerSecond, limits.webhookBytesPerSecond, now),
        inFlight: 0,
      };
      this.tenants.set(tenant, st);
    } else if (st.limits !== limits) {
      // The limits service hands out one object per tenant until they change: a new one is a change.
      st.requests.reset(limits.webhookRequestsPerSecond, limits.webhookRequestsPerSecond);
      st.bytes.reset(limits.webhookBytesPerSecond, limits.webhookBytesPerSecond);
      st.limits = limits;
    }
    return st;
  }

  /** Adds `n` bytes to the tenant's and the process's in-flight bytes, or throws; `bodySoFar` names the body's size for a 413. */
  private reserve(tenant: string, st: TenantState, n: number, bodySoFar = n): void {
    const budget = st.limits.webhookInFlightBytes;
    if (bodySoFar > budget || bodySoFar > this.inFlightBudgetTotal) {
      const max = Math.min(budget, this.inFlightBudgetTotal);
      throw new AppError('PAYLOAD_TOO_LARGE', `the body (${bodySoFar} bytes${n === bodySoFar ? '' : ' so far'}) is larger than the ${max} bytes tenant ${tenant} may have in flight (webhookInFlightBytes)`, 'user', {
        limit: 'webhookInFlightBytes',
      });
    }
    if (st.inFlight + n > budget) {
      throw rateLimited(`tenant ${tenant} has ${st.inFlight} bytes of webhook bodies in flight; this one would pass its ${budget} (webhookInFlightBytes)`, IN_FLIGHT_RETRY_AFTER_S * 1_000, {
        limit: 'webhookInFlightBytes',
      });
    }
    if (this.inFlightTotal + n > this.inFlightBudgetTotal) {
      throw new AppError('UNAVAILABLE', `the hub has ${this.inFlightTotal} bytes of webhook bodies in flight; this one would pass its ${this.inFlightBudgetTotal} (PLEXUS_WEBHOOK_IN_FLIGHT_BYTES)`, 'transient', {
        retryAfterSeconds: IN_FLIGHT_RETRY_AFTER_S,
      });
    }
    st.inFlight += n;
    this.inFlightTotal += n;
  }

  private unreserve(st: TenantState, n: number): void {
    st.inFlight -= n;
    this.inFlightTotal -= n;
  }

  private bytesRateLimited(tenant: string, st: TenantState, waitMs: number): AppError {
    return rateLimited(`tenant ${tenant} is over its webhook body rate of ${st.limits.webhookBytesPerSecond} bytes per second (webhookBytesPerSecond)`, waitMs, { limit: 'webhookBytesPerSecond' });
  }
}
