/**
 * The Director's background work, on the bus (so any process with the director role takes it,
 * each job once):
 * - `director.spec-fetches`: fetch a spec or document named by a fetch request, validate it, store
 *   it; network failures and 5xx are retried with backoff, the status says where it stands.
 * - `director.webhook-deliveries`: POST one CONFIGURATION_CHANGED notification, signed with
 *   Standard Webhooks headers; a failed attempt is recorded and the next one scheduled with
 *   exponential backoff until the retry window (24 h by default) is spent.
 */
import { Webhook } from 'standardwebhooks';
import type { Bus, Consumer, Job } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import { authFromSecret, authHeaders } from './director.auths.js';
import { MAX_CLOB_BYTES } from './director.inputs.js';
import type { CredentialStore, OutboundHttp } from './director.ports.js';
import * as repo from './director.repo.js';
import { DELIVERY_QUEUE, FETCH_QUEUE, type DeliveryJob, type FetchJob } from './director.service.js';
import type { SpecType, SpecFormat, SpecValidator } from './director.specs.js';

const FETCH_ATTEMPTS = 5;
const FETCH_TIMEOUT_MS = 15_000;
const DELIVERY_TIMEOUT_MS = 10_000;

export interface DirectorJobsOptions {
  db: Db;
  bus: Bus;
  logger: Logger;
  credentials: CredentialStore;
  outbound: OutboundHttp;
  specs: SpecValidator;
  /** Delay before the second attempt of a delivery; each later one waits 3× longer (capped at 4 h). */
  webhookFirstRetryMs: number;
  /** After this long since the change, a delivery that never succeeded is FAILED for good. */
  webhookRetryWindowMs: number;
}

/** Delay before attempt `attempt + 1` of a delivery. */
export function deliveryDelayMs(attempt: number, firstRetryMs: number): number {
  return Math.min(firstRetryMs * 3 ** Math.max(0, attempt - 1), 4 * 3_600_000);
}

function describe(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `${e.message} (${cause})` : e.message;
}

export class DirectorJobs {
  private consumers: Consumer[] = [];

  constructor(private readonly o: DirectorJobsOptions) {}

  async start(): Promise<void> {
    this.consumers.push(
      await this.o.bus.consume<FetchJob>(FETCH_QUEUE, (job) => this.fetch(job), {
        concurrency: 2,
        maxAttempts: FETCH_ATTEMPTS,
        retryDelayMs: (attempt) => Math.min(1_000 * 4 ** (attempt - 1), 60_000),
      }),
    );
    this.consumers.push(await this.o.bus.consume<DeliveryJob>(DELIVERY_QUEUE, (job) => this.deliver(job), { concurrency: 4 }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((c) => c.stop()));
    this.consumers = [];
  }

  // ---------------------------------------------------------------- spec fetches

  async fetch(job: Job<FetchJob>): Promise<void> {
    const { tenantId, target, id } = job.payload;
    const row = target === 'definition' ? await repo.findDefinition(this.o.db, tenantId, id, 'api').then((r) => r ?? repo.findDefinition(this.o.db, tenantId, id, 'event')) : await repo.findDocument(this.o.db, tenantId, id);
    if (!row?.fetch_request || row.fetch_status !== 'INITIAL') return;
    const record = (r: { status: 'INITIAL' | 'SUCCEEDED' | 'FAILED'; message: string | null; data?: string; validation?: repo.DefinitionRow['spec_validation'] }) =>
      target === 'definition' ? repo.recordDefinitionFetch(this.o.db, tenantId, id, r) : repo.recordDocumentFetch(this.o.db, tenantId, id, r);
    const req = row.fetch_request;
    let url: URL;
    try {
      url = new URL(req.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      return record({ status: 'FAILED', message: `cannot fetch ${req.url}: only absolute http:// and https:// URLs can be fetched` });
    }
    const auth = req.authSecretId ? authFromSecret(await this.o.credentials.read(tenantId, req.authSecretId)) : undefined;
    if (auth?.credential.oauth) return record({ status: 'FAILED', message: 'fetching with OAuth client credentials is not supported yet; use basic credentials or none' });
    let res;
    try {
      res = await this.o.outbound({ url: url.toString(), method: 'GET', headers: { accept: '*/*', ...authHeaders(auth) }, timeoutMs: FETCH_TIMEOUT_MS, maxBytes: MAX_CLOB_BYTES });
    } catch (err) {
      return this.retryFetch(job, record, `attempt ${job.attempt} of ${FETCH_ATTEMPTS}: ${describe(err)}`);
    }
    if (res.status >= 500 || res.status === 429) return this.retryFetch(job, record, `attempt ${job.attempt} of ${FETCH_ATTEMPTS}: ${url.host} answered ${res.status}`);
    if (res.status < 200 || res.status >= 300) return record({ status: 'FAILED', message: `${url.host} answered ${res.status}` });
    if (target === 'document' || !('spec' in row) || !row.spec) return record({ status: 'SUCCEEDED', message: null, data: res.body });
    const validation = await this.o.specs.validate({ type: row.spec.type as SpecType, format: row.spec.format as SpecFormat, data: res.body });
    return record({ status: 'SUCCEEDED', message: null, data: res.body, validation });
  }

  private async retryFetch(job: Job<FetchJob>, record: (r: { status: 'INITIAL' | 'FAILED'; message: string }) => Promise<void>, message: string): Promise<void> {
    if (job.attempt >= FETCH_ATTEMPTS) return record({ status: 'FAILED', message });
    await record({ status: 'INITIAL', message });
    // Thrown: the bus retries it later with backoff.
    throw new Error(message);
  }

  // ---------------------------------------------------------------- webhook deliveries

  async deliver(job: Job<DeliveryJob>): Promise<void> {
    const { tenantId, deliveryId } = job.payload;
    const d = await repo.findDelivery(this.o.db, tenantId, deliveryId);
    if (!d || d.status !== 'PENDING') return;
    const hook = await repo.findWebhook(this.o.db, tenantId, d.webhook_id);
    if (!hook) return repo.recordDeliveryAttempt(this.o.db, tenantId, deliveryId, { status: 'FAILED', httpStatus: null, error: 'the webhook was deleted', nextAttemptAt: null });
    const keyValue = await this.o.credentials.read(tenantId, hook.signing_secret_id);
    const auth = hook.auth_secret_id ? authFromSecret(await this.o.credentials.read(tenantId, hook.auth_secret_id)) : undefined;
    const body = JSON.stringify(d.payload);
    const now = new Date();
    const signature = new Webhook(String(keyValue.signingSecret)).sign(d.message_id, now, body);
    let status: number | null = null;
    let error: string | null = null;
    try {
      const res = await this.o.outbound({
        url: hook.url,
        method: 'POST',
        headers: {
          ...authHeaders(auth),
          'content-type': 'application/json',
          'webhook-id': d.message_id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body,
        timeoutMs: DELIVERY_TIMEOUT_MS,
        maxBytes: 64 * 1024,
      });
      status = res.status;
      if (res.status >= 200 && res.status < 300) {
        return repo.recordDeliveryAttempt(this.o.db, tenantId, deliveryId, { status: 'SUCCEEDED', httpStatus: res.status, error: null, nextAttemptAt: null });
      }
      error = `the receiver answered ${res.status}`;
    } catch (err) {
      error = describe(err);
    }
    const attempt = d.attempts + 1;
    const delayMs = deliveryDelayMs(attempt, this.o.webhookFirstRetryMs);
    const giveUp = now.getTime() + delayMs - d.created_at.getTime() > this.o.webhookRetryWindowMs;
    await this.o.db.transaction(async (tx) => {
      await repo.recordDeliveryAttempt(tx, tenantId, deliveryId, { status: giveUp ? 'FAILED' : 'PENDING', httpStatus: status, error, nextAttemptAt: giveUp ? null : new Date(now.getTime() + delayMs) });
      // The next attempt is a new job, so the bus's own attempt limit never ends a delivery early.
      if (!giveUp) await this.o.bus.enqueue(DELIVERY_QUEUE, job.payload, { tx, delayMs });
    });
    if (giveUp) this.o.logger.warn({ deliveryId, webhookId: hook.id, attempts: attempt }, 'webhook delivery failed for good');
  }
}

/**
 * The outbound call until the platform's outbound guard lands: fetch with a time limit, no
 * redirects followed, and the body read up to `maxBytes`.
 */
export const fetchOutbound: OutboundHttp = async (req) => {
  const res = await fetch(req.url, { method: req.method, headers: req.headers, body: req.body, redirect: 'manual', signal: AbortSignal.timeout(req.timeoutMs) });
  const reader = res.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > req.maxBytes) {
        await reader.cancel();
        throw new Error(`the answer is larger than ${req.maxBytes} bytes`);
      }
      chunks.push(value);
    }
  }
  return { status: res.status, body: Buffer.concat(chunks).toString('utf8') };
};
