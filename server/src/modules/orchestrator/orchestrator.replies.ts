/**
 * The ReplyWaiter of sync webhooks. The `webhook-reply` step's answer is stored with its step run
 * and announced by NOTIFY at commit, so a webhook process waiting on any process hears it; in the
 * process that ran the step, the waiter is woken directly after the commit (no round trip).
 * An execution that ends without a reply wakes its waiter too, with `undefined`.
 */
import type { ReplyWaiter, WebhookReply } from '../../contracts/flows.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { CommittedReplies } from './orchestrator.commit.js';
import * as repo from './orchestrator.repo.js';

type Waiter = (reply: WebhookReply | undefined) => void;

export class Replies implements ReplyWaiter {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private unlisten: (() => Promise<void>) | undefined;
  private listening: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
  ) {}

  /** Listens for reply notices; also started by the first wait, on processes without the orchestrator role. */
  start(): Promise<void> {
    this.listening ??= (async () => {
      const channel = await repo.channelName(this.db, 'replies');
      this.unlisten = await this.db.listen(channel, (payload) => this.onNotice(payload));
    })().catch((err: unknown) => {
      this.listening = undefined;
      throw err;
    });
    return this.listening;
  }

  async stop(): Promise<void> {
    await this.listening?.catch(() => {});
    this.listening = undefined;
    await this.unlisten?.();
    this.unlisten = undefined;
    for (const [id, set] of this.waiters) for (const w of set) this.settle(id, w, undefined);
  }

  waitForReply(executionId: string, timeoutMs: number): Promise<WebhookReply | undefined> {
    return new Promise((resolve) => {
      const waiter: Waiter = (reply) => {
        clearTimeout(timer);
        resolve(reply);
      };
      const timer = setTimeout(() => this.settle(executionId, waiter, undefined), timeoutMs);
      void this.start().catch((err: unknown) => this.logger.warn({ err }, 'orchestrator: cannot listen for webhook replies'));
      let set = this.waiters.get(executionId);
      if (!set) this.waiters.set(executionId, (set = new Set()));
      set.add(waiter);
      // The reply (or the end of the execution) may have come before we started listening for it.
      void this.lookUp(executionId, waiter);
    });
  }

  /** Called after each commit of this process's engine. */
  delivered(c: CommittedReplies): void {
    for (const r of c.replies) this.deliver(r.executionId, r.reply);
    for (const id of c.finishedWithoutReply) this.deliver(id, undefined);
  }

  private async lookUp(executionId: string, waiter: Waiter): Promise<void> {
    try {
      const stored = await repo.findReply(this.db, executionId);
      if (stored !== undefined) return this.settle(executionId, waiter, stored as WebhookReply);
      const status = await repo.findExecutionStatus(this.db, executionId);
      if (status && status !== 'running') {
        // It ended without a reply — unless the reply landed between the two reads.
        const late = await repo.findReply(this.db, executionId);
        this.settle(executionId, waiter, late === undefined ? undefined : (late as WebhookReply));
      }
    } catch (err) {
      this.logger.warn({ err, executionId }, 'orchestrator: looking up a webhook reply failed; waiting for the notice');
    }
  }

  private onNotice(payload: string): void {
    let notice: { e?: string; r?: WebhookReply; done?: boolean };
    try {
      notice = JSON.parse(payload) as typeof notice;
    } catch {
      return;
    }
    const id = notice.e;
    if (!id || !this.waiters.has(id)) return;
    if (notice.done) return this.deliver(id, undefined);
    if (notice.r) return this.deliver(id, notice.r);
    void repo.findReply(this.db, id).then(
      (r) => r !== undefined && this.deliver(id, r as WebhookReply),
      (err: unknown) => this.logger.warn({ err, executionId: id }, 'orchestrator: reading a webhook reply failed'),
    );
  }

  private deliver(executionId: string, reply: WebhookReply | undefined): void {
    const set = this.waiters.get(executionId);
    if (!set) return;
    for (const w of [...set]) this.settle(executionId, w, reply);
  }

  private settle(executionId: string, waiter: Waiter, reply: WebhookReply | undefined): void {
    const set = this.waiters.get(executionId);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.waiters.delete(executionId);
    waiter(reply);
  }
}
