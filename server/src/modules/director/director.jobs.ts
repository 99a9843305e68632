/**
 * The Director's background work, on the bus (so any process with the director role takes it,
 * each job once):
 * - `director.spec-fetches`: fetch a spec or document named by a fetch request, validate it, store
 *   it; network failures and 5xx are retried with backoff, the status says where it stands.
 * - `director.webhook-deliveries`: POST one CONFIGURATION_CHANGED notification, signed with
 *   Standard Webhooks headers; a failed attempt is recorded and the next one scheduled with
 *   exponential backoff until the retry window (24 h by default) is spent.
 * Every call goes through the platform's outbound guard: the URLs are tenants' (the operator's
 * network policy applies, redirects are checked again, credentials stay on their origin).
 */
import { Webhook } from 'standardwebhooks';
import type { Bus, Consumer, Job } from '../../platform/bus/index.js';
import type { Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import type { Outbound, OutboundRequest } from '../../platform/outbound/index.js';
import { requestToken } from '../secrets/index.js';
import { authFromSecret } from './director.auths.js';
import type { AuthInput } from './director.inputs.js';
import { MAX_CLOB_BYTES } from './director.inputs.js';
import type { CredentialStore } from './director.ports.js';
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
  outbound: Outbound;
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

/** A failure that another attempt cannot cure: a refused destination, a bad URL or auth, an answer too large. */
function isFinal(err: unknown): boolean {
  return err instanceof AppError && err.kind === 'user';
}

/** The outbound guard's errors are written for tenants; anything else is reduced to its message. */
function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** What an Auth adds to a call: headers and query parameters, all of them bound to the URL's origin. */
interface Authorization {
  headers: Record<string, string>;
  query: Array<[string, string]>;
}

/**
 * The credentials of a Compass Auth as headers and query parameters. OAuth client credentials
 * (Compass `OAuthCredentialData {clientId, clientSecret, url}`) ask `url` for a token each time:
 * fetches and deliveries are rare, and a token kept between them would be one more secret to
 * store. CSRF token endpoints (`requestAuth.csrf`) are not fetched.
 */
async function authorize(outbound: Outbound, a: AuthInput | undefined): Promise<Authorization> {
  const out: Authorization = { headers: {}, query: [] };
  if (!a) return out;
  for (const [k, v] of Object.entries(a.additionalHeaders ?? {})) out.headers[k.toLowerCase()] = v.join(', ');
  for (const [k, vs] of Object.entries(a.additionalQueryParams ?? {})) for (const v of vs) out.query.push([k, v]);
  const { basic, oauth } = a.credential;
  if (basic) out.headers.authorization = `Basic ${Buffer.from(`${basic.username}:${basic.password}`).toString('base64')}`;
  if (oauth) {
    const token = await requestToken(outbound, { grantType: 'client_credentials', tokenUrl: oauth.url, clientId: oauth.clientId, clientSecret: oauth.clientSecret });
    out.headers.authorization = `Bearer ${token.accessToken ?? ''}`;
  }
  return out;
}

/** The guard's request for `url` with `auth`: its headers and parameters are declared as credentials, so a redirect to another origin drops them. */
function authorizedRequest(url: URL, auth: Authorization, req: Omit<OutboundRequest, 'url'>): OutboundRequest {
  const target = new URL(url);
  for (const [k, v] of auth.query) target.searchParams.append(k, v);
  return {
    ...req,
    url: target,
    headers: { ...auth.headers, ...req.headers },
    credentials: { headers: Object.keys(auth.headers), query: Object.fromEntries(auth.query) },
  };
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
    let res;
    try {
      const authorization = await authorize(this.o.outbound, auth);
      res = await this.o.outbound.request(authorizedRequest(url, authorization, { method: 'GET', headers: { accept: '*/*' }, timeoutMs: FETCH_TIMEOUT_MS, maxResponseBytes: MAX_CLOB_BYTES }));
    } catch (err) {
      if (isFinal(err)) return record({ status: 'FAILED', message: `cannot fetch ${req.url}: ${describe(err)}` });
      return this.retryFetch(job, record, `attempt ${job.attempt} of ${FETCH_ATTEMPTS}: ${describe(err)}`);
    }
    if (res.status >= 500 || res.status === 429) return this.retryFetch(job, record, `attempt ${job.attempt} of ${FETCH_ATTEMPTS}: ${url.host} answered ${res.status}`);
    if (res.status < 200 || res.status >= 300) return record({ status: 'FAILED', message: `${url.host} answered ${res.status}` });
    if (target === 'document' || !('spec' in row) || !row.spec) return record({ status: 'SUCCEEDED', message: null, data: res.body.toString('utf8') });
    const data = res.body.toString('utf8');
    const validation = await this.o.specs.validate({ type: row.spec.type as SpecType, format: row.spec.format as SpecFormat, data });
    return record({ status: 'SUCCEEDED', message: null, data, validation });
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
    let final = false;
    try {
      const authorization = await authorize(this.o.outbound, auth);
      const res = await this.o.outbound.request(
        authorizedRequest(new URL(hook.url), authorization, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'webhook-id': d.message_id,
            'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
            'webhook-signature': signature,
          },
          body,
          timeoutMs: DELIVERY_TIMEOUT_MS,
          maxResponseBytes: 1024 * 1024,
          // A receiver that moved is misconfigured; the signed body is not re-posted elsewhere.
          maxRedirects: 0,
        }),
      );
      status = res.status;
      if (res.status >= 200 && res.status < 300) {
        return repo.recordDeliveryAttempt(this.o.db, tenantId, deliveryId, { status: 'SUCCEEDED', httpStatus: res.status, error: null, nextAttemptAt: null });
      }
      error = `the receiver answered ${res.status}`;
    } catch (err) {
      error = describe(err);
      // A refused destination or a URL the guard cannot call stays so until the operator changes the
      // policy or the application its webhook: no 24 h of retries. Other failures may pass.
      final = err instanceof AppError && (err.code === 'DESTINATION_REFUSED' || err.code === 'BAD_REQUEST');
    }
    const attempt = d.attempts + 1;
    const delayMs = deliveryDelayMs(attempt, this.o.webhookFirstRetryMs);
    const giveUp = final || now.getTime() + delayMs - d.created_at.getTime() > this.o.webhookRetryWindowMs;
    await this.o.db.transaction(async (tx) => {
      await repo.recordDeliveryAttempt(tx, tenantId, deliveryId, { status: giveUp ? 'FAILED' : 'PENDING', httpStatus: status, error, nextAttemptAt: giveUp ? null : new Date(now.getTime() + delayMs) });
      // The next attempt is a new job, so the bus's own attempt limit never ends a delivery early.
      if (!giveUp) await this.o.bus.enqueue(DELIVERY_QUEUE, job.payload, { tx, delayMs });
    });
    if (giveUp) this.o.logger.warn({ deliveryId, webhookId: hook.id, attempts: attempt }, 'webhook delivery failed for good');
  }
}
