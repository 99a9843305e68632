import { describe, expect, it } from 'vitest';
import { AppError } from '../errors.js';
import { assertName, assertPattern, assertUserQueue, eventQueueName, matchesPattern, patternToRegex } from './pattern.js';

/** The same matching as PostgreSQL `~` with an ARE; JS regex agrees on this small subset. */
function regexMatches(pattern: string, name: string): boolean {
  return new RegExp(patternToRegex(pattern)).test(name);
}

describe('bus names and patterns', () => {
  const cases: [pattern: string, name: string, matches: boolean][] = [
    ['flow.started', 'flow.started', true],
    ['flow.started', 'flow.starting', false],
    ['flow.started', 'flow.started.x', false],
    ['flow.*', 'flow.started', true],
    ['flow.*', 'flow', false],
    ['flow.*', 'flow.a.b', false],
    ['*.started', 'flow.started', true],
    ['audit.>', 'audit.iam', true],
    ['audit.>', 'audit.iam.login', true],
    ['audit.>', 'audit', false],
    ['audit.>', 'auditx.iam', false],
    ['>', 'anything.at.all', true],
    ['a.*.c.>', 'a.b.c.d.e', true],
    ['a.*.c.>', 'a.b.c', false],
    ['a-b_c.*', 'a-b_c.x-y', true],
    ['a.b', 'aXb', false],
  ];

  it.each(cases)('%s vs %s → %s (in JS and as a POSIX regex)', (pattern, name, expected) => {
    expect(matchesPattern(pattern, name)).toBe(expected);
    expect(regexMatches(pattern, name)).toBe(expected);
  });

  it.each(['', 'a..b', '.a', 'a.', 'a b', 'a.*', 'a.>', 'ü', 'a/b', 'x'.repeat(201)])('rejects the name %j, naming it', (name) => {
    expect(() => assertName(name, 'queue')).toThrowError(AppError);
    try {
      assertName(name, 'queue');
    } catch (err) {
      expect((err as AppError).code).toBe('VALIDATION_FAILED');
      expect((err as AppError).message).toContain(JSON.stringify(name));
    }
  });

  it.each(['', 'a.>.b', '>.a', 'a..*', 'a.**', 'a.b>', 'a.*x'])('rejects the pattern %j', (pattern) => {
    expect(() => assertPattern(pattern)).toThrow(/invalid pattern/);
  });

  it('accepts good names and patterns', () => {
    expect(() => assertName('audit.iam.login', 'event name')).not.toThrow();
    expect(() => assertPattern('audit.*.login')).not.toThrow();
    expect(() => assertPattern('>')).not.toThrow();
  });

  it('reserves the event queues', () => {
    expect(() => assertUserQueue('_evt.audit.1234abcd')).toThrow(/reserved/);
    expect(() => assertUserQueue('_evtx')).not.toThrow();
  });

  it('gives each (group, pattern) its own queue', () => {
    expect(eventQueueName('audit', 'audit.>')).not.toBe(eventQueueName('audit', 'flow.*'));
    expect(eventQueueName('audit', 'audit.>')).toBe(eventQueueName('audit', 'audit.>'));
    expect(() => assertName(eventQueueName('audit', 'audit.>'), 'queue')).not.toThrow();
  });
});
