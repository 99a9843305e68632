/**
 * Throughput and errors per flow for the cockpit: executions finished per minute, failures, and
 * the p99 of their durations, over the last minutes.
 *
 * A query over every execution of the last hour grows with the traffic (200,000 executions took
 * 1.3 s on embedded PGlite, on the engine's thread), so a job rolls each finished minute up into
 * `orchestrator_minute_stats` (migration 0033) once a minute: counts and a duration histogram
 * per tenant, flow and minute. A chart reads those rows, plus the minutes not rolled up yet
 * straight from the executions. Percentiles come from the merged histograms: 80 buckets equal
 * on a log scale from 1 ms to 1 h, so a p99 is the upper bound of its bucket (at most 20 % above
 * the exact value).
 */
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import * as repo from './orchestrator.repo.js';

const MINUTE_MS = 60_000;
const BUCKETS = 80;
const MAX_MS = 3_600_000;
/** A minute is rolled up this long after it ends: commits of executions that ended in it are in. */
const SETTLE_MS = 5_000;
/** Minutes rolled up per statement, so a long-idle hub catches up in bounded steps. */
const CATCH_UP_MINUTES = 60;

export interface StatFigures {
  executions: number;
  failures: number;
  /** 99th percentile duration (upper bound of its histogram bucket); null when none finished. */
  p99Ms: number | null;
}

export interface ExecutionStats {
  from: string;
  bucketSeconds: number;
  total: StatFigures;
  flows: Array<StatFigures & { flowId: string }>;
  /** One per minute, oldest first, empty minutes included. */
  buckets: Array<StatFigures & { at: string }>;
}

/** The longest duration in bucket `b` (1-based, as width_bucket numbers them; 81 is "an hour or more"). */
export function bucketUpperMs(b: number): number {
  return b > BUCKETS ? MAX_MS : Math.exp((b * Math.log(MAX_MS)) / BUCKETS);
}

type Histogram = Map<number, number>;

function addInto(into: Histogram, from: Record<string, number>): void {
  for (const [b, n] of Object.entries(from)) into.set(Number(b), (into.get(Number(b)) ?? 0) + Number(n));
}

/** The value below which `q` of the counted durations fall, as a bucket's upper bound. */
export function quantileMs(h: Histogram, q: number): number | null {
  let total = 0;
  for (const n of h.values()) total += n;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (const b of [...h.keys()].sort((a, c) => a - c)) {
    seen += h.get(b)!;
    if (seen >= rank) return Math.round(bucketUpperMs(b));
  }
  return MAX_MS;
}

interface Acc {
  executions: number;
  failures: number;
  histogram: Histogram;
}

const empty = (): Acc => ({ executions: 0, failures: 0, histogram: new Map() });

function figures(a: Acc | undefined): StatFigures {
  return { executions: a?.executions ?? 0, failures: a?.failures ?? 0, p99Ms: a ? quantileMs(a.histogram, 0.99) : null };
}

/** Per minute, per flow and in total over the last `minutes` (the current one included). */
export async function executionStats(db: Db, tenantId: string, flowId: string | undefined, minutes: number, now = new Date()): Promise<ExecutionStats> {
  const current = Math.floor(now.getTime() / MINUTE_MS) * MINUTE_MS;
  const since = new Date(current - (minutes - 1) * MINUTE_MS);
  const rolledUntil = (await repo.readStatsProgress(db)) ?? since;
  const split = new Date(Math.min(Math.max(rolledUntil.getTime(), since.getTime()), current + MINUTE_MS));
  const [rolled, live] = await Promise.all([
    split > since ? repo.rolledMinuteStats(db, tenantId, flowId, since, split) : Promise.resolve([]),
    repo.liveMinuteStats(db, tenantId, flowId, split, new Date(current + MINUTE_MS)),
  ]);
  const byMinute = new Map<number, Acc>();
  const byFlow = new Map<string, Acc>();
  const total = empty();
  for (const r of [...rolled, ...live]) {
    for (const acc of [byMinute.get(r.minute.getTime()) ?? byMinute.set(r.minute.getTime(), empty()).get(r.minute.getTime())!, byFlow.get(r.flow_id) ?? byFlow.set(r.flow_id, empty()).get(r.flow_id)!, total]) {
      acc.executions += Number(r.executions);
      acc.failures += Number(r.failures);
      addInto(acc.histogram, r.histogram);
    }
  }
  const buckets: ExecutionStats['buckets'] = [];
  for (let t = since.getTime(); t <= current; t += MINUTE_MS) buckets.push({ at: new Date(t).toISOString(), ...figures(byMinute.get(t)) });
  return {
    from: since.toISOString(),
    bucketSeconds: 60,
    total: figures(total.executions > 0 ? total : undefined),
    flows: [...byFlow].map(([id, a]) => ({ flowId: id, ...figures(a) })).sort((a, b) => b.executions - a.executions),
    buckets,
  };
}

/**
 * Rolls every finished minute up, once a minute. Processes that run it at once take turns on
 * the progress row; a minute stored already is left as it is.
 */
export class StatsRollup {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    /** Rolled-up minutes older than this are deleted (the executions' retention). */
    private readonly retentionMs: number,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.run(), MINUTE_MS);
    this.timer.unref();
    void this.run();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Rolls up what is due now; one run at a time. Resolves to the minutes stored. */
  run(now = new Date()): Promise<void> {
    this.running ??= this.rollUp(now)
      .catch((err: unknown) => this.logger.warn({ err }, 'orchestrator: rolling up execution stats failed'))
      .finally(() => {
        this.running = undefined;
      });
    return this.running;
  }

  private async rollUp(now: Date): Promise<void> {
    const due = new Date(Math.floor((now.getTime() - SETTLE_MS) / MINUTE_MS) * MINUTE_MS);
    for (;;) {
      const more = await this.db.transaction(async (tx) => {
        // First run: the last hour is what a chart shows; older executions are not worth a pass.
        const next = (await repo.lockStatsProgress(tx)) ?? new Date(due.getTime() - 60 * MINUTE_MS);
        if (next >= due) return false;
        const to = new Date(Math.min(due.getTime(), next.getTime() + CATCH_UP_MINUTES * MINUTE_MS));
        await repo.rollUpMinuteStats(tx, next, to);
        await repo.setStatsProgress(tx, to);
        return to < due;
      });
      if (!more) break;
    }
    await repo.pruneMinuteStats(this.db, new Date(now.getTime() - this.retentionMs));
  }
}
