/**
 * Pairing tokens without React: how long one has left and what became of it, as the pairing
 * panel says it. The clock is the browser's: a skewed clock shifts the countdown by the skew,
 * and the status the Director reports (`expired`) stays the authority.
 */
import type { OneTimeTokenStatus } from '../api/director';

/** `4:59`, `1:02:03`, or `expired` once `expiresAt` has passed on this clock. */
export function timeLeft(expiresAt: string, now: number): string {
  const ms = Date.parse(expiresAt) - now;
  if (!(ms > 0)) return 'expired';
  const total = Math.ceil(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** What became of the newest token: used wins over the rest, then replaced, then expired. */
export function tokenState(status: OneTimeTokenStatus, now: number): 'used' | 'replaced' | 'expired' | 'waiting' {
  if (status.used) return 'used';
  if (status.invalidated) return 'replaced';
  if (status.expired || timeLeft(status.expiresAt, now) === 'expired') return 'expired';
  return 'waiting';
}

/** A token that still works: requesting another one stops it. */
export function isLive(status: OneTimeTokenStatus | null | undefined, now: number): boolean {
  return !!status && tokenState(status, now) === 'waiting';
}
