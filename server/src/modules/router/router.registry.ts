/**
 * The deployment-wide list of attached workers: each aggregator instance reports the workers
 * attached to it to the database (`router_sessions`, migration 0061) every REPORT_MS and soon
 * after each attach or detach; `GET /api/v1/workers` on any instance shows its own workers as
 * they are now and the others' as last reported. An instance that stops reporting (it died)
 * drops out of the list after FRESH_MS; its rows are deleted after FORGET_MS by whoever reports.
 */
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { Dispatcher } from './router.dispatch.js';
import * as repo from './router.repo.js';

export const REPORT_MS = 2_000;
/** Reports older than this are from an instance that is gone (three periods missed, and slack). */
export const FRESH_MS = 3 * REPORT_MS + 1_000;
const FORGET_MS = 60_000;
/** Attaches and detaches arriving together make one report. */
const CHANGE_DELAY_MS = 50;

export interface WorkerView {
  workerId: string;
  sessionId: string;
  components: Array<{ name: string; version: string; functions: string[] }>;
  concurrency: number;
  inFlight: number;
  draining: boolean;
  secure: boolean;
  connectedAt: string;
  lastHeartbeatAt: string;
  aggregator: string;
  /** The aggregator instance (hub process) the worker is attached to. */
  instanceId: string;
  /** When that instance reported these figures (its own workers: now). */
  reportedAt: string;
}

export class WorkerRegistry {
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private unsubscribe: (() => void) | undefined;
  /** `tenant \0 component` served by workers of other instances, as of the last report read. */
  private elsewhere = new Set<string>();
  /** Whether the last report written had no workers, and when it was written. */
  private wroteEmpty = false;
  private wroteAt = 0;

  constructor(
    private readonly db: Db,
    private readonly dispatcher: Dispatcher,
    private readonly where: { aggregator: string; instanceId: string },
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    this.unsubscribe = this.dispatcher.onChange(() => this.changed());
    this.timer = setInterval(() => void this.report(), REPORT_MS);
    this.timer.unref();
    await this.report();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unsubscribe?.();
    clearInterval(this.timer);
    clearTimeout(this.soon);
    await this.running;
    await repo.clearSessions(this.db, this.where.instanceId).catch((err: unknown) => this.logger.warn({ err }, 'router: could not clear the reported workers'));
  }

  /** This instance's workers as they are now. */
  local(tenant?: string): WorkerView[] {
    const now = new Date().toISOString();
    return this.dispatcher.list(tenant).map((s) => this.view(s, now));
  }

  private view(s: ReturnType<Dispatcher['list']>[number], now: string): WorkerView {
    return {
      workerId: s.workerId,
      sessionId: s.sessionId,
      components: s.offers.map((o) => ({ name: o.name, version: o.version, functions: [...o.functions] })),
      concurrency: s.concurrency,
      inFlight: s.inFlight,
      draining: s.draining,
      secure: s.secure,
      connectedAt: s.connectedAt.toISOString(),
      lastHeartbeatAt: s.lastSeen.toISOString(),
      aggregator: this.where.aggregator,
      instanceId: this.where.instanceId,
      reportedAt: now,
    };
  }

  /** Whether another instance reported (within FRESH_MS, read every REPORT_MS) a worker of `tenant` serving `component`. */
  servedElsewhere(tenant: string, component: string): boolean {
    return this.elsewhere.has(`${tenant}\u0000${component}`);
  }

  /** The other instance that reported the tenant's worker `workerId` within FRESH_MS (admin commands are forwarded there). */
  holderOf(tenant: string, workerId: string): Promise<string | undefined> {
    return repo.findReportingInstance(this.db, tenant, workerId, this.where.instanceId, FRESH_MS);
  }

  /** The tenant's workers on every instance of the deployment. */
  async list(tenant: string): Promise<WorkerView[]> {
    const others = await repo.listReportedSessions(this.db, tenant, this.where.instanceId, FRESH_MS);
    return [...this.local(tenant), ...others.map((r) => ({ ...(r.view as unknown as WorkerView), instanceId: r.instance_id, reportedAt: r.reported_at.toISOString() }))];
  }

  private changed(): void {
    if (this.stopped || this.soon) return;
    this.soon = setTimeout(() => {
      this.soon = undefined;
      void this.report();
    }, CHANGE_DELAY_MS);
    this.soon.unref();
  }

  /** One report at a time; a change during one makes another right after. */
  private report(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        const now = new Date().toISOString();
        const sessions = this.dispatcher.list().map((s) => ({ sessionId: s.sessionId, tenant: s.tenant, view: this.view(s, now) }));
        try {
          // An instance without workers writes nothing while that stays so (an idle embedded hub
          // stays idle), but still forgets dead instances' rows once a minute.
          if (!(sessions.length === 0 && this.wroteEmpty && Date.now() - this.wroteAt < FORGET_MS)) {
            await this.db.transaction(async (tx) => {
              await repo.deleteReportedSessions(tx, this.where.instanceId, FORGET_MS);
              await repo.insertSessions(tx, this.where.instanceId, sessions);
            });
            this.wroteEmpty = sessions.length === 0;
            this.wroteAt = Date.now();
          }
          const served = new Set<string>();
          for (const r of await repo.listServedElsewhere(this.db, this.where.instanceId, FRESH_MS)) served.add(`${r.tenant_id}\u0000${r.component}`);
          this.elsewhere = served;
        } catch (err) {
          this.logger.warn({ err }, 'router: could not report the attached workers');
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }
}
