/**
 * Webhooks ingress. The hot path — resolve the flow, enqueue a StepJob for its start node,
 * answer 202 — reads no flow from the database per call: the accepting flows are cached in
 * memory, dropped at once when `webhook_flows` changes (NOTIFY from any process), and
 * re-read after a few seconds anyway in case a notification was lost. Enqueues without a
 * request key ride the bus's group commit; a request key (or a signed call's `webhook-id`)
 * is stored in the same transaction as its job.
 */
import { randomUUID } from 'node:crypto';
import { signingSecretOwner, startNodeOf, stepQueueName, WebhookSettings, type Flow, type StepHandoff, type StepJob } from '../../contracts/flows.js';
import { signingKeyOf, type SecretResolver } from '../../contracts/secrets.js';
import type { AuditPublisher } from '../../platform/audit.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import * as repo from './webhooks.repo.js';

/** A flow the ingress may deliver to. */
export interface HookTarget {
  flowId: string;
  tenant: string;
  startNode: string;
  flowVersion: number;
  settings: WebhookSettings;
  accepting: boolean;
  /** `auth: hmac`: the key signatures are checked with (read from the secrets module, kept in memory only). */
  signingKey?: string | undefined;
  /** `auth: hmac` without a usable key: why, for the refusal. */
  signingKeyProblem?: string | undefined;
}

/**
 * What the webhooks module asks of the secrets module: the flow's signing secret by id (only
 * its id is stored here), and a home for a clear one arriving from an older hub.
 */
export interface WebhookSecrets extends SecretResolver {
  storeOwned(tx: Queryable, input: { tenantId: string; owner: string; name: string; value: string }): Promise<string>;
}

/** How long a call to a flow that is starting waits for it to accept calls. */
const STARTING_WAIT_MS = 2_000;

/** How long an idempotency key (and a signed call's webhook-id) is remembered. */
export const REQUEST_KEY_TTL_MS = 24 * 3_600_000;
/** Upper bound on a cached flow's staleness when a change notification is lost. */
const CACHE_TTL_MS = 5_000;
const CACHE_MAX = 100_000;

export interface AcceptInput {
  target: HookTarget;
  job: Omit<StepJob, 'executionId' | 'flowId' | 'tenant' | 'nodeId' | 'sequence' | 'trigger' | 'flowVersion'>;
  /** `idempotency-key` / `x-request-id`: a repeat returns the first execution. */
  requestKey?: string | undefined;
  /** Standard Webhooks `webhook-id` of a signed call: a repeat returns the first execution. */
  webhookId?: string | undefined;
  /** Called with the execution id before the job is stored (sync replies register here). */
  beforeEnqueue?: (executionId: string) => void;
}

export class WebhooksService {
  private readonly cache = new Map<string, { target: HookTarget | undefined; until: number }>();
  private readonly loading = new Map<string, Promise<HookTarget | undefined>>();
  /** Calls waiting for a starting flow to accept, woken by its next change. */
  private readonly changeWaiters = new Map<string, Set<() => void>>();
  /** Bumped by every invalidation, so a read that raced with one is not cached. */
  private epoch = 0;
  private unlisten: (() => Promise<void>) | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    readonly audit: AuditPublisher,
    private readonly log: Logger,
    private readonly handoff?: StepHandoff | undefined,
    private readonly secrets?: WebhookSecrets | undefined,
  ) {}

  /** Starts listening for changes of the flows this process caches, and purging old keys. */
  async start(): Promise<void> {
    // Records written before signing secrets moved to the secrets module hold them in clear.
    await this.moveClearSigningSecrets().catch((err: unknown) => this.log.error({ err }, 'webhooks: could not move signing secrets to the secrets module'));
    const channel = await repo.webhooksChannel(this.db);
    this.unlisten = await this.db.listen(channel, (flowId) => this.invalidate(flowId));
    this.purgeTimer = setInterval(() => void this.purgeExpiredKeys(), 10 * 60_000);
    this.purgeTimer.unref();
  }

  async stop(): Promise<void> {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    await this.unlisten?.().catch((err: unknown) => this.log.warn({ err }, 'webhooks: unlisten failed'));
    this.unlisten = undefined;
  }

  /**
   * The flow behind `/hook/:flowId`; undefined for unknown, inactive and scheduled flows alike.
   * A flow that is starting (recorded, not yet accepting) is waited for up to
   * `STARTING_WAIT_MS`: the flows API may already show it `active` (its module hears
   * `flow.started` on its own subscription), and a caller that starts a flow and calls it at once
   * should be served rather than get a 404 for a few milliseconds.
   */
  async resolve(flowId: string): Promise<HookTarget | undefined> {
    // Every call of a running flow ends here: no waiter (a promise, a closure, a map entry) for it.
    const first = await this.lookup(flowId);
    if (!first || first.accepting) return first;
    const deadline = Date.now() + STARTING_WAIT_MS;
    for (let last = false; ; ) {
      // Registered before the read, so a change landing between the two is not missed.
      const change = this.nextChange(flowId);
      const target = await this.lookup(flowId);
      if (!target || target.accepting || last) {
        change.cancel();
        return target?.accepting ? target : undefined;
      }
      // Woken by acceptFlow / forgetFlow here or their NOTIFY from another process.
      const changed = await change.wait(deadline - Date.now());
      if (!changed) {
        // Deadline: one fresh read, in case a notification was lost.
        last = true;
        this.cache.delete(flowId);
      }
    }
  }

  /** Resolves true at the next change of the flow (invalidate), false after `ms`. */
  private nextChange(flowId: string): { wait(ms: number): Promise<boolean>; cancel(): void } {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let set = this.changeWaiters.get(flowId);
    if (!set) this.changeWaiters.set(flowId, (set = new Set()));
    set.add(wake);
    const cancel = (): void => {
      const s = this.changeWaiters.get(flowId);
      s?.delete(wake);
      if (s?.size === 0) this.changeWaiters.delete(flowId);
    };
    return {
      cancel,
      wait: async (ms) => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
        try {
          return await Promise.race([woken.then(() => true as const), timedOut]);
        } finally {
          clearTimeout(timer);
          cancel();
        }
      },
    };
  }

  private async lookup(flowId: string): Promise<HookTarget | undefined> {
    const hit = this.cache.get(flowId);
    if (hit && hit.until > Date.now()) return hit.target;
    let pending = this.loading.get(flowId);
    if (!pending) {
      pending = this.load(flowId).finally(() => this.loading.delete(flowId));
      this.loading.set(flowId, pending);
    }
    return pending;
  }

  private async load(flowId: string): Promise<HookTarget | undefined> {
    const epoch = this.epoch;
    const row = await repo.findWebhookFlow(this.db, flowId);
    const recorded = row ? toTarget(row) : undefined;
    const target = recorded ? await this.withSigningKey(recorded) : undefined;
    if (epoch === this.epoch) {
      if (this.cache.size >= CACHE_MAX) this.cache.clear();
      this.cache.set(flowId, { target, until: Date.now() + CACHE_TTL_MS });
    }
    return target;
  }

  /**
   * An `hmac` flow's key, from the secrets module (decrypted there, audited at most once a minute
   * per flow). Cached with the target, so a rotated secret takes effect within the cache TTL.
   */
  private async withSigningKey(target: HookTarget): Promise<HookTarget> {
    const { auth, secret, secretId } = target.settings;
    // Only a flow that accepts calls checks signatures (a starting one is re-read until it does).
    if (auth !== 'hmac' || !target.accepting) return target;
    // A record from before signing secrets moved out, until start-up moves it.
    if (secret) return { ...target, signingKey: secret };
    if (!secretId) return { ...target, signingKeyProblem: 'the flow has no signing secret' };
    if (!this.secrets) return { ...target, signingKeyProblem: 'signing secrets are not available on this process' };
    try {
      const key = signingKeyOf(await this.secrets.resolveForStep(target.tenant, secretId, { flowId: target.flowId, stepId: 'webhook signature' }));
      return key ? { ...target, signingKey: key } : { ...target, signingKeyProblem: `the flow's signing secret ${secretId} is not an apiKey secret of 16+ characters` };
    } catch (err) {
      if (err instanceof AppError && err.code === 'NOT_FOUND') return { ...target, signingKeyProblem: `the flow's signing secret ${secretId} no longer exists` };
      throw err;
    }
  }

  private invalidate(flowId: string): void {
    this.epoch++;
    this.cache.delete(flowId);
    this.loading.delete(flowId);
    const waiters = this.changeWaiters.get(flowId);
    if (waiters) {
      this.changeWaiters.delete(flowId);
      for (const wake of waiters) wake();
    }
  }

  /**
   * Durably enqueues the first step of a new execution; resolves once it is stored. With a
   * request key already used on this flow, enqueues nothing and returns the first execution.
   */
  async accept(input: AcceptInput): Promise<{ executionId: string; duplicate: boolean }> {
    const { target } = input;
    const executionId = randomUUID();
    const job: StepJob = {
      message: input.job.message,
      ...(input.job.awaitsReply ? { awaitsReply: true } : {}),
      executionId,
      flowId: target.flowId,
      tenant: target.tenant,
      nodeId: target.startNode,
      sequence: 0,
      trigger: 'webhook',
      flowVersion: target.flowVersion,
    };
    const queue = stepQueueName(target.flowId, target.startNode);
    // When the first step runs in this process, it gets the job directly: stored invisible for
    // the ticket's lease, so no consumer claims it back (see StepHandoff).
    const ticket = this.handoff?.reserve(queue);
    const opts = ticket ? { delayMs: ticket.leaseMs, held: true } : {};
    try {
      // Stored marked: a copy claimed from the queue later is a redelivery (StepJob.handoff).
      const accepted = await this.store(input, queue, ticket ? { ...job, handoff: true } : job, opts);
      if (ticket) {
        if (accepted.jobId === undefined) ticket.cancel();
        else ticket.deliver(accepted.jobId, job);
      }
      return { executionId: accepted.executionId, duplicate: accepted.duplicate };
    } catch (err) {
      ticket?.cancel();
      throw err;
    }
  }

  private async store(input: AcceptInput, queue: string, job: StepJob, opts: { delayMs?: number; held?: boolean }): Promise<{ executionId: string; duplicate: boolean; jobId?: string }> {
    const { target } = input;
    const executionId = job.executionId;
    if (!input.requestKey && !input.webhookId) {
      input.beforeEnqueue?.(executionId);
      return { executionId, duplicate: false, jobId: await this.bus.enqueue(queue, job, opts) };
    }
    return this.db.transaction(async (tx) => {
      // A repeated webhook-id is a sender's retry (Standard Webhooks resend with the same id) or
      // a captured call replayed: either way it runs nothing new and gets the first execution.
      if (input.webhookId && !(await repo.claimRequestKey(tx, target.flowId, `whid:${input.webhookId}`, executionId, REQUEST_KEY_TTL_MS))) {
        const first = await repo.findRequestExecution(tx, target.flowId, `whid:${input.webhookId}`);
        if (first) return { executionId: first, duplicate: true };
      }
      if (input.requestKey && !(await repo.claimRequestKey(tx, target.flowId, `key:${input.requestKey}`, executionId, REQUEST_KEY_TTL_MS))) {
        const first = await repo.findRequestExecution(tx, target.flowId, `key:${input.requestKey}`);
        if (first) return { executionId: first, duplicate: true };
      }
      input.beforeEnqueue?.(executionId);
      return { executionId, duplicate: false, jobId: await this.bus.enqueue(queue, job, { ...opts, tx }) };
    });
  }

  // ---- lifecycle (webhooks.events.ts) ----

  /** `flow.starting`: record a flow without cron, not accepting yet; a scheduled one is not ours. */
  async recordFlow(flow: Flow): Promise<void> {
    // Scheduled and event-triggered flows are not started by calls.
    if (flow.cron || flow.trigger) {
      await repo.deleteWebhookFlow(this.db, flow.id);
      return;
    }
    const settings = WebhookSettings.parse(flow.flowSettings?.webhooks ?? {});
    const record = { flowId: flow.id, tenant: flow.tenant, startNode: startNodeOf(flow.graph).id, flowVersion: flow.version };
    await this.db.transaction(async (tx) => {
      // An event from an older hub carries the secret in clear: it is not stored here as such.
      await repo.upsertWebhookFlow(tx, { ...record, settings: await this.withoutClearSecret(tx, flow.tenant, flow.id, settings) });
    });
    this.invalidate(flow.id);
  }

  /** Settings with a clear signing secret replaced by the id of a secret the flow owns. */
  private async withoutClearSecret(tx: Queryable, tenantId: string, flowId: string, settings: WebhookSettings): Promise<WebhookSettings> {
    const { secret, ...rest } = settings;
    if (!secret || !this.secrets) return settings;
    const secretId = await this.secrets.storeOwned(tx, { tenantId, owner: signingSecretOwner(flowId), name: `webhook signing secret of flow ${flowId}`, value: secret });
    return { ...rest, secretId };
  }

  /** Start-up: every recorded flow holding a clear signing secret refers to one in the secrets module instead. */
  async moveClearSigningSecrets(): Promise<number> {
    if (!this.secrets) return 0;
    let moved = 0;
    let after = '';
    for (;;) {
      const batch = await this.db.transaction(async (tx) => {
        const rows = await repo.lockWebhookFlowsWithClearSecrets(tx, after, 50);
        for (const row of rows) {
          after = row.flow_id;
          const settings = WebhookSettings.safeParse(row.settings);
          if (settings.success) await repo.setWebhookFlowSettings(tx, row.flow_id, await this.withoutClearSecret(tx, row.tenant_id, row.flow_id, settings.data));
        }
        return rows.length;
      });
      moved += batch;
      if (batch === 0) break;
    }
    if (moved > 0) this.log.info({ flows: moved }, 'webhooks: signing secrets moved to the secrets module');
    return moved;
  }

  /** `flow.started`: accept calls from now on. */
  async acceptFlow(flowId: string): Promise<void> {
    if (await repo.markWebhookFlowAccepting(this.db, flowId)) this.log.debug({ flowId }, 'webhooks: accepting calls');
    this.invalidate(flowId);
  }

  /** `flow.stopping`: refuse calls at once and forget the flow. */
  async forgetFlow(flowId: string): Promise<void> {
    // Refuse in this process before the delete commits; other processes learn by NOTIFY.
    this.invalidate(flowId);
    this.cache.set(flowId, { target: undefined, until: Date.now() + CACHE_TTL_MS });
    await repo.deleteWebhookFlow(this.db, flowId);
    this.invalidate(flowId);
  }

  async purgeExpiredKeys(): Promise<void> {
    try {
      const n = await repo.deleteExpiredRequestKeys(this.db, REQUEST_KEY_TTL_MS);
      if (n > 0) this.log.debug({ count: n }, 'webhooks: purged expired request keys');
    } catch (err) {
      this.log.warn({ err }, 'webhooks: purging request keys failed');
    }
  }
}

function toTarget(row: repo.WebhookFlowRow): HookTarget | undefined {
  const settings = WebhookSettings.safeParse(row.settings);
  return {
    flowId: row.flow_id,
    tenant: row.tenant_id,
    startNode: row.start_node,
    flowVersion: row.flow_version,
    // A record the current code cannot read accepts nothing rather than something unchecked.
    settings: settings.success ? settings.data : { auth: 'bearer', respond: 'async', timeoutMs: 30_000 },
    accepting: row.accepting && settings.success,
  };
}
