/**
 * Names and patterns of the bus, NATS-style: dot-separated tokens of `[A-Za-z0-9_-]`; in a
 * pattern `*` stands for exactly one token and `>` (last only) for one or more. Both adapters
 * use the same syntax, so a pattern means the same thing in SQL (as a POSIX regex) and on NATS
 * (as a filter subject).
 */
import { createHash } from 'node:crypto';
import { AppError } from '../errors.js';

const TOKEN = /^[A-Za-z0-9_-]+$/;
/** Long enough for any sensible name, short enough for NATS subjects and consumer names. */
const MAX_NAME_LENGTH = 200;
/** First token of the queues that carry a group's events; reserved so user queues cannot collide. */
export const EVENT_QUEUE_PREFIX = '_evt';

export type NameKind = 'queue' | 'event name' | 'group';

/** Throws VALIDATION_FAILED naming the value unless `value` is a valid name. */
export function assertName(value: string, kind: NameKind): void {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_NAME_LENGTH || !value.split('.').every((t) => TOKEN.test(t))) {
    throw AppError.invalid(`invalid ${kind} ${JSON.stringify(value)}: use dot-separated tokens of A-Z a-z 0-9 _ - (at most ${MAX_NAME_LENGTH} characters)`, { [kind]: value });
  }
}

/** A queue a caller may enqueue to or consume: a valid name outside the reserved event queues. */
export function assertUserQueue(queue: string): void {
  assertName(queue, 'queue');
  if (queue === EVENT_QUEUE_PREFIX || queue.startsWith(`${EVENT_QUEUE_PREFIX}.`)) {
    throw AppError.invalid(`invalid queue ${JSON.stringify(queue)}: queues under "${EVENT_QUEUE_PREFIX}." carry subscribed events and are reserved`, { queue });
  }
}

/** Throws VALIDATION_FAILED naming the value unless `pattern` is a valid subscription pattern. */
export function assertPattern(pattern: string): void {
  const tokens = typeof pattern === 'string' ? pattern.split('.') : [];
  const isValid =
    pattern.length > 0 &&
    pattern.length <= MAX_NAME_LENGTH &&
    tokens.every((t, i) => TOKEN.test(t) || t === '*' || (t === '>' && i === tokens.length - 1));
  if (!isValid) {
    throw AppError.invalid(`invalid pattern ${JSON.stringify(pattern)}: use dot-separated tokens, "*" for one token, ">" (last) for one or more`, { pattern });
  }
}

/** The anchored POSIX regular expression (PostgreSQL `~`) equivalent to a valid pattern. */
export function patternToRegex(pattern: string): string {
  const parts = pattern.split('.').map((t) => (t === '*' ? '[^.]+' : t === '>' ? '[^.]+(\\.[^.]+)*' : t));
  // Tokens hold only [A-Za-z0-9_-], none of which is special outside a bracket expression.
  return `^${parts.join('\\.')}$`;
}

/** True when the event `name` matches `pattern` (both assumed valid). */
export function matchesPattern(pattern: string, name: string): boolean {
  const p = pattern.split('.');
  const n = name.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return n.length > i;
    if (i >= n.length || (p[i] !== '*' && p[i] !== n[i])) return false;
  }
  return p.length === n.length;
}

/**
 * The queue that holds `group`'s events for `pattern`. The durable unit is (group, pattern), so
 * one group may subscribe several patterns with different handlers without them stealing each
 * other's events; the pattern is hashed because `*` and `>` are not allowed in queue names.
 */
export function eventQueueName(group: string, pattern: string): string {
  return `${EVENT_QUEUE_PREFIX}.${group}.${shortHash(pattern)}`;
}

export function isEventQueue(queue: string): boolean {
  return queue.startsWith(`${EVENT_QUEUE_PREFIX}.`);
}

export function shortHash(value: string, length = 8): string {
  return createHash('sha1').update(value).digest('hex').slice(0, length);
}
