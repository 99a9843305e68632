/** Parsers of option values: a bad value is a usage error (exit 2) naming the option. */
import { InvalidArgumentError } from '@commander-js/extra-typings';

/** `a,b , c` → ['a', 'b', 'c']. */
export function splitList(value: string): string[] {
  return value.split(',').map((r) => r.trim()).filter(Boolean);
}

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number of 1 or more');
  return n;
}

/** `90s`, `5m`, `1h` or milliseconds. */
export function durationMs(value: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('must be a duration such as 30s, 5m or 1h');
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms'];
}

/** A repeatable option (`-f a -f b`). */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
