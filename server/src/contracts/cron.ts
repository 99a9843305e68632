/**
 * Cron expressions of scheduled flows, shared by the flow repository (validation), the
 * scheduler (next due time) and the web UI (preview). croner does the parsing; this file fixes
 * what Plexus accepts: 5 fields (minute precision) or 6 (seconds first), and an optional IANA
 * timezone (UTC when unset).
 */
import { Cron } from 'croner';

/** Why `expr` (with `timezone`) is not an accepted cron expression; undefined when it is. */
export function cronProblem(expr: string, timezone?: string): string | undefined {
  const fields = expr.trim().split(/\s+/).filter(Boolean);
  if (fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day month weekday) or 6 (with seconds first), got ${fields.length}`;
  }
  if (timezone !== undefined && !isTimezone(timezone)) return `unknown timezone ${JSON.stringify(timezone)}`;
  try {
    const cron = makeCron(expr, timezone);
    if (!cron.nextRun()) return 'never fires';
  } catch (err) {
    return (err as Error).message.replace(/^CronPattern: /, '');
  }
  return undefined;
}

/** The first time strictly after `after` that `expr` fires; undefined when it never does again. */
export function nextCronRun(expr: string, timezone: string | undefined, after: Date): Date | undefined {
  return makeCron(expr, timezone).nextRun(after) ?? undefined;
}

/** Parsed expressions by `timezone|expr`: many flows share a few, and a scheduler asks often. */
const parsed = new Map<string, Cron>();
const MAX_PARSED = 10_000;

function makeCron(expr: string, timezone: string | undefined): Cron {
  const key = `${timezone ?? ''}|${expr}`;
  let cron = parsed.get(key);
  if (!cron) {
    // `paused`: croner would otherwise arm a timer of its own; we only ask it for dates.
    // UTC as a fixed offset: an order of magnitude cheaper than asking Intl for the zone.
    cron = new Cron(expr.trim(), { paused: true, legacyMode: true, ...(timezone ? { timezone } : { utcOffset: 0 }) });
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(key, cron);
  }
  return cron;
}

function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
