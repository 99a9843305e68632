import { describe, expect, it } from 'vitest';
import type { OneTimeTokenStatus } from '../api/director';
import { isLive, timeLeft, tokenState } from './pairing';

const NOW = Date.parse('2026-12-06T08:00:00.000Z');
const at = (ms: number): string => new Date(NOW + ms).toISOString();
const status = (over: Partial<OneTimeTokenStatus> = {}): OneTimeTokenStatus => ({ createdAt: at(-1000), expiresAt: at(300_000), used: false, usedAt: null, invalidated: false, expired: false, ...over });

describe('pairing tokens', () => {
  it('counts down in minutes and seconds (hours when there are any), then says expired', () => {
    expect(timeLeft(at(300_000), NOW)).toBe('5:00');
    expect(timeLeft(at(299_001), NOW)).toBe('5:00');
    expect(timeLeft(at(298_500), NOW)).toBe('4:59');
    expect(timeLeft(at(3_723_000), NOW)).toBe('1:02:03');
    expect(timeLeft(at(1), NOW)).toBe('0:01');
    expect(timeLeft(at(0), NOW)).toBe('expired');
    expect(timeLeft(at(-5_000), NOW)).toBe('expired');
    expect(timeLeft('not a date', NOW)).toBe('expired');
  });

  it('says what became of a token: used, replaced, expired or waiting', () => {
    expect(tokenState(status(), NOW)).toBe('waiting');
    expect(tokenState(status({ used: true, usedAt: at(-500), expired: true }), NOW)).toBe('used');
    expect(tokenState(status({ invalidated: true }), NOW)).toBe('replaced');
    expect(tokenState(status({ expired: true }), NOW)).toBe('expired');
    // Past its expiry on this clock before the Director was asked again.
    expect(tokenState(status({ expiresAt: at(-1) }), NOW)).toBe('expired');
    expect(isLive(status(), NOW)).toBe(true);
    expect(isLive(status({ used: true }), NOW)).toBe(false);
    expect(isLive(null, NOW)).toBe(false);
  });
});
