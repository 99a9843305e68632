/**
 * Group commit of the engine's writes. Every step run ends in one write: its step-run record,
 * the jobs of the next steps, the execution's pending-job count, and maybe a snapshot and a
 * webhook reply — atomically, so a crash leaves either all of it or none (then the job comes
 * back and runs again under the same idempotency key). An execution that its trigger job ran
 * from start to end, all steps succeeding, is written as one row holding its runs. Writes that
 * arrive while a transaction is in flight are coalesced into the next one: a handful of
 * statements per batch, not per step, which is what makes thousands of step runs per second
 * possible on embedded PGlite.
 */
import type { StepHandoff, StepHandoffTicket, StepJob, WebhookReply } from '../../contracts/flows.js';
import { Batcher, type BatchEntry } from '../../platform/batcher.js';
import type { Bus } from '../../platform/bus/index.js';
import type { Db, Queryable } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import { EXECUTIONS_CHANGED, type ExecutionChange, type ExecutionsChanged } from './orchestrator.events.js';
import * as repo from './orchestrator.repo.js';

export interface ChildJob {
  queue: string;
  job: StepJob;
  delayMs: number;
}

export interface StepCommit {
  /** Whose execution this is: names the live event that tells watchers about the change. */
  scope: { tenantId: string; flowId: string };
  /** The run of the job's step first, then the runs of pure steps it ran inline; all or none are recorded. */
  runs: repo.StepRunWrite[];
  /** Created here when the trigger job did not create it before running (a pure start step). */
  execution?: repo.NewExecution | undefined;
  children: ChildJob[];
  /** Change of the execution's pending jobs and failed steps. */
  delta: { pending: number; failed: number };
  snapshot?: { flowId: string; nodeId: string; tenantId: string; json: string } | undefined;
  reply?: { executionId: string; reply: WebhookReply } | undefined;
  /**
   * Messages this job routed to next steps (run inline or queued), and the tenant's limit on an
   * execution's total. An execution created by this commit is checked by the job itself; any
   * other's total is counted here, and a commit that takes it past the limit is refused with
   * MessageLimitExceeded (nothing of it is written).
   */
  messages?: { produced: number; limit: number } | undefined;
}

/** A step's commit would take its execution past the tenant's limit on messages per execution. */
export class MessageLimitExceeded extends Error {
  override readonly name = 'MessageLimitExceeded';
  constructor(
    readonly executionId: string,
    readonly total: number,
    readonly limit: number,
  ) {
    super(`execution ${executionId} would have produced ${total} messages, more than its limit of ${limit}`);
  }
}

type CommitResult = boolean | MessageLimitExceeded;

type WriteItem = { kind: 'execution'; execution: repo.NewExecution } | { kind: 'step'; commit: StepCommit };

/** What a committed batch tells the reply waiters of this process. */
export interface CommittedReplies {
  replies: Array<{ executionId: string; reply: WebhookReply }>;
  /** Executions awaiting a reply that ended without one. */
  finishedWithoutReply: string[];
}

interface Handoff {
  ticket: StepHandoffTicket;
  job: StepJob;
  /** The job's id once enqueued. */
  id?: string | undefined;
}

type NewExecutionRow = repo.NewExecution & { pending: number; failed: number };

/** The next jobs of one queue and delay in a batch; a hand-off group holds hand-offs only. */
interface JobGroup {
  queue: string;
  delayMs: number;
  jobs: StepJob[];
  handoffs: Handoff[];
}

function sortById<T extends { id: string }>(xs: T[]): T[] {
  return xs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

type Pending = BatchEntry<WriteItem, boolean>;

function settlePending(p: Pending, result: CommitResult): void {
  if (result instanceof MessageLimitExceeded) p.reject(result);
  else p.resolve(result);
}

const MAX_BATCH = 500;
/** Executions named per live event: ids are ~36 characters, so 40 stay well under its size cap. */
const LIVE_CHUNK = 40;
/** NOTIFY payloads are capped at 8000 bytes; larger replies are read back from the table. */
const MAX_INLINE_REPLY_CHARS = 7_000;

export class ExecutionWriter {
  private readonly batcher: Batcher<WriteItem, boolean>;

  constructor(
    private readonly db: Db,
    private readonly bus: Bus,
    private readonly logger: Logger,
    private readonly onCommitted: (c: CommittedReplies) => void,
    /** Runs next steps placed in this process without a claim round trip (see the runtime). */
    private readonly handoff: StepHandoff | undefined,
  ) {
    // PGlite runs one statement at a time; a PostgreSQL pool commits a few batches in parallel.
    this.batcher = new Batcher({ maxBatch: MAX_BATCH, maxInFlight: db.dialect === 'pglite' ? 1 : 4, flush: (batch) => this.flushBatch(batch) });
  }

  /** Creates the execution if it does not exist yet (the trigger job may be redelivered). */
  ensureExecution(execution: repo.NewExecution): Promise<boolean> {
    return this.batcher.add({ kind: 'execution', execution });
  }

  /**
   * Resolves true when the step run was recorded, false when it was a duplicate delivery; rejects
   * with MessageLimitExceeded when it would take its execution past its message limit.
   */
  commitStep(commit: StepCommit): Promise<boolean> {
    return this.batcher.add({ kind: 'step', commit });
  }

  /** Resolves once every write handed in so far is committed (or failed). */
  idle(): Promise<void> {
    return this.batcher.idle();
  }

  private async flushBatch(batch: ReadonlyArray<Pending>): Promise<void> {
    try {
      const { results, replies } = await this.write(batch.map((p) => p.item));
      batch.forEach((p, i) => settlePending(p, results[i]!));
      this.onCommitted(replies);
      return;
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err);
        return;
      }
      // One bad write must not fail its neighbours: retry each alone.
      this.logger.warn({ err, size: batch.length }, 'orchestrator: batch commit failed; committing one by one');
    }
    for (const p of batch) {
      try {
        const { results, replies } = await this.write([p.item]);
        settlePending(p, results[0]!);
        this.onCommitted(replies);
      } catch (err) {
        p.reject(err);
      }
    }
  }

  private async write(items: WriteItem[]): Promise<{ results: CommitResult[]; replies: CommittedReplies }> {
    const replies: CommittedReplies = { replies: [], finishedWithoutReply: [] };
    const handoffs: Handoff[] = [];
    let results: CommitResult[];
    try {
      const alone = compactOnly(items);
      if (!alone) {
        results = await this.transact(items, replies, handoffs);
      } else {
        // One statement, atomic by itself: no BEGIN / COMMIT around it. An execution that
        // exists already (a copy of its job ran before) is written the ordinary way after it.
        const { created } = await repo.insertCompactExecutions(this.db, alone);
        results = items.map((): CommitResult => true);
        const rest = items.flatMap((it, i) => (created.has((it as StepItem).commit.execution!.id) ? [] : [i]));
        if (rest.length > 0) {
          const more = await this.transact(rest.map((i) => items[i]!), replies, handoffs);
          rest.forEach((i, k) => (results[i] = more[k]!));
        }
      }
    } catch (err) {
      for (const h of handoffs) h.ticket.cancel();
      throw err;
    }
    for (const h of handoffs) {
      if (h.id === undefined) h.ticket.cancel();
      else h.ticket.deliver(h.id, h.job);
    }
    this.announce(items, results);
    return { results, replies };
  }

  /**
   * Tells whoever watches (the cockpit) which executions changed, once committed: one live
   * event per batch of up to LIVE_CHUNK executions. Fire and forget: a watcher that misses one
   * reads the execution again; the engine never waits for it.
   */
  private announce(items: WriteItem[], results: CommitResult[]): void {
    const changed = new Map<string, ExecutionChange>();
    items.forEach((it, i) => {
      if (it.kind === 'execution') changed.set(it.execution.id, { id: it.execution.id, tenant: it.execution.tenantId, flowId: it.execution.flowId });
      else if (results[i] === true) changed.set(it.commit.runs[0]!.executionId, { id: it.commit.runs[0]!.executionId, tenant: it.commit.scope.tenantId, flowId: it.commit.scope.flowId });
    });
    const all = [...changed.values()];
    for (let i = 0; i < all.length; i += LIVE_CHUNK) {
      const executions = all.slice(i, i + LIVE_CHUNK);
      this.bus.live.publish<ExecutionsChanged>(EXECUTIONS_CHANGED, { executions }).catch((err: unknown) => this.logger.warn({ err }, 'orchestrator: live event not sent'));
    }
  }

  private async transact(items: WriteItem[], replies: CommittedReplies, handoffs: Handoff[]): Promise<CommitResult[]> {
    return this.db.transaction(async (tx) => {
      const results = items.map((): CommitResult => true);
      // Executions a trigger creates before running its step: one pending job, its own.
      const ensured = new Map<string, NewExecutionRow>();
      for (const it of items) if (it.kind === 'execution') ensured.set(it.execution.id, { ...it.execution, pending: 1, failed: 0 });
      if (ensured.size > 0) await repo.insertExecutions(tx, sortById([...ensured.values()]));

      // Steps, first delivery wins within a batch; sorted so concurrent batches lock rows in one order.
      const steps: Array<{ index: number; commit: StepCommit; key: string }> = [];
      const seen = new Set<string>();
      items.forEach((it, index) => {
        if (it.kind !== 'step') return;
        const head = it.commit.runs[0]!;
        const key = repo.stepRunKey(head.executionId, head.nodeId, head.path);
        if (seen.has(key)) {
          results[index] = false;
          return;
        }
        seen.add(key);
        steps.push({ index, commit: it.commit, key });
      });
      if (steps.length === 0) return results;
      steps.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      // Executions that ended within their trigger job, every step succeeded: one row each, its
      // runs stored with it. One that exists already (a copy of the job ran before) goes the
      // ordinary way below, where its runs meet what that copy recorded.
      const ended: string[] = [];
      const compact = steps.filter((s) => storedWithExecution(s.commit));
      let compacted = new Set<string>();
      if (compact.length > 0) {
        const done = await repo.insertCompactExecutions(tx, sortById(compact.map((s) => ({ ...s.commit.execution!, runsJson: repo.compactRuns(s.commit.runs) }))));
        compacted = new Set(compact.filter((s) => done.created.has(s.commit.execution!.id)).map((s) => s.key));
        ended.push(...done.awaitingReply);
      }
      let ordinary = compacted.size > 0 ? steps.filter((s) => !compacted.has(s.key)) : steps;
      const refused = await this.countMessages(tx, ordinary);
      if (refused.size > 0) {
        ordinary = ordinary.filter((s) => !refused.has(s.key));
        for (const s of steps) {
          const r = refused.get(s.key);
          if (r) results[s.index] = r;
        }
      }
      const applied = ordinary.length > 0 ? await repo.upsertStepRuns(tx, ordinary.flatMap((s) => s.commit.runs)) : new Set<string>();

      const jobs = new Map<string, JobGroup>();
      const created = new Map<string, NewExecutionRow>();
      const deltas = new Map<string, repo.ExecutionDelta>();
      const snapshots = new Map<string, { flowId: string; nodeId: string; tenantId: string; json: string }>();
      for (const s of steps) {
        const c = s.commit;
        if (refused.has(s.key)) continue;
        if (!compacted.has(s.key)) {
          if (!applied.has(s.key)) {
            results[s.index] = false;
            continue;
          }
          this.settle(c, jobs, handoffs, created, deltas);
        }
        if (c.snapshot) snapshots.set(`${c.snapshot.flowId}\u0000${c.snapshot.nodeId}`, c.snapshot);
        if (c.reply) replies.replies.push(c.reply);
      }
      for (const g of jobs.values()) {
        const ids = await this.bus.enqueueMany(g.queue, g.jobs, { tx, ...(g.delayMs > 0 ? { delayMs: g.delayMs } : {}), ...(g.handoffs.length > 0 ? { held: true } : {}) });
        // Hand-offs get their job ids in the order of the group's jobs.
        g.handoffs.forEach((h, i) => {
          h.id = ids[i];
        });
      }
      if (snapshots.size > 0) await repo.upsertSnapshots(tx, [...snapshots.values()].sort((a, b) => (a.flowId + a.nodeId < b.flowId + b.nodeId ? -1 : 1)));
      if (replies.replies.length > 0) {
        await repo.insertReplies(tx, replies.replies.map((r) => ({ executionId: r.executionId, json: JSON.stringify(r.reply) })));
      }
      // Executions that ended here while a sync call awaits their reply.
      if (created.size > 0) ended.push(...(await repo.insertExecutions(tx, sortById([...created.values()]))));
      if (deltas.size > 0) ended.push(...(await repo.applyExecutionDeltas(tx, sortById([...deltas.values()]))));
      const notices: string[] = replies.replies.map((r) => replyNotice(r.executionId, r.reply));
      const replied = new Set(replies.replies.map((r) => r.executionId));
      for (const id of ended) {
        if (!replied.has(id)) {
          replies.finishedWithoutReply.push(id);
          notices.push(JSON.stringify({ e: id, done: true }));
        }
      }
      if (notices.length > 0) await repo.notify(tx, 'replies', notices);
      return results;
    });
  }

  /**
   * Adds the messages each step produced to its execution's count (one statement per batch, and
   * none for a batch of executions that ended within their trigger jobs); returns the steps whose
   * execution that takes past its limit. The count keeps what refused steps produced: once past
   * its limit, an execution's every further step that produces a message is refused too.
   */
  private async countMessages(tx: Queryable, steps: ReadonlyArray<{ commit: StepCommit; key: string }>): Promise<Map<string, MessageLimitExceeded>> {
    const refused = new Map<string, MessageLimitExceeded>();
    const byExecution = new Map<string, { id: string; messages: number; limit: number }>();
    for (const { commit } of steps) {
      if (!commit.messages || commit.messages.produced === 0) continue;
      const id = commit.runs[0]!.executionId;
      const e = byExecution.get(id) ?? { id, messages: 0, limit: commit.messages.limit };
      e.messages += commit.messages.produced;
      e.limit = Math.min(e.limit, commit.messages.limit);
      byExecution.set(id, e);
    }
    if (byExecution.size === 0) return refused;
    const totals = await repo.addExecutionMessages(tx, sortById([...byExecution.values()]));
    for (const { commit, key } of steps) {
      if (!commit.messages || commit.messages.produced === 0) continue;
      const e = byExecution.get(commit.runs[0]!.executionId)!;
      const total = totals.get(e.id) ?? 0;
      if (total > e.limit) refused.set(key, new MessageLimitExceeded(e.id, total, e.limit));
    }
    return refused;
  }

  /** Groups a recorded step's next jobs by queue and adds its execution, or its change, to the write. */
  private settle(c: StepCommit, jobs: Map<string, JobGroup>, handoffs: Handoff[], created: Map<string, NewExecutionRow>, deltas: Map<string, repo.ExecutionDelta>): void {
    for (const child of c.children) {
      const ticket = child.delayMs === 0 ? this.handoff?.reserve(child.queue) : undefined;
      const delayMs = ticket ? ticket.leaseMs : child.delayMs;
      const k = `${child.queue}\u0000${delayMs}\u0000${ticket ? 'h' : ''}`;
      let group = jobs.get(k);
      if (!group) jobs.set(k, (group = { queue: child.queue, delayMs, jobs: [], handoffs: [] }));
      // Stored marked: a copy claimed from the queue later is a redelivery (StepJob.handoff).
      group.jobs.push(ticket ? { ...child.job, handoff: true } : child.job);
      if (ticket) {
        const h: Handoff = { ticket, job: child.job };
        group.handoffs.push(h);
        handoffs.push(h);
      }
    }
    if (c.execution) {
      // Created with this step run: its count starts at 1 (the trigger) plus this delta.
      created.set(c.execution.id, { ...c.execution, pending: 1 + c.delta.pending, failed: c.delta.failed });
    } else if (c.delta.pending !== 0 || c.delta.failed !== 0) {
      const id = c.runs[0]!.executionId;
      const d = deltas.get(id) ?? { id, pending: 0, failed: 0 };
      d.pending += c.delta.pending;
      d.failed += c.delta.failed;
      deltas.set(id, d);
    }
  }
}

type StepItem = Extract<WriteItem, { kind: 'step' }>;

/**
 * The rows of a batch that is only executions ended within their trigger jobs, with nothing else
 * to write (no snapshot, reply or awaited reply): the common batch. Undefined for any other.
 */
function compactOnly(items: WriteItem[]): Array<repo.NewExecution & { runsJson: string }> | undefined {
  const ids = new Set<string>();
  for (const it of items) {
    if (it.kind !== 'step' || !storedWithExecution(it.commit) || it.commit.snapshot || it.commit.reply || it.commit.execution!.awaitsReply) return undefined;
    ids.add(it.commit.execution!.id);
  }
  // Two copies of one job in a batch: the transaction sorts them out.
  if (ids.size !== items.length) return undefined;
  return sortById(items.map((it) => ({ ...(it as StepItem).commit.execution!, runsJson: repo.compactRuns((it as StepItem).commit.runs) })));
}

/** An execution created and ended by this commit, its runs all succeeded (see insertCompactExecutions). */
function storedWithExecution(c: StepCommit): boolean {
  return c.execution !== undefined && c.children.length === 0 && c.delta.pending === -1 && c.delta.failed === 0 && c.runs.every((r) => r.status === 'succeeded');
}

/** The NOTIFY payload announcing a reply; it carries the reply itself when small enough. */
export function replyNotice(executionId: string, reply: WebhookReply): string {
  const inline = JSON.stringify({ e: executionId, r: reply });
  return inline.length <= MAX_INLINE_REPLY_CHARS ? inline : JSON.stringify({ e: executionId });
}
