/**
 * Recovery after kill -9, with real `plexus start` processes and the default settings an
 * operator has (bus lease, 60 s step time limits): every accepted message completes within
 * 10 s of the restart (embedded), and a dead process's jobs are taken over by the others within
 * 10 s of its death (PostgreSQL + NATS).
 */
import { describe, expect, it } from 'vitest';
import { measureEmbeddedRecovery, measureTakeover } from '../helpers/crash.js';
import { TEST_DATABASE_URL, TEST_NATS_URL } from '../helpers/services.js';

describe('recovery after kill -9', () => {
  it('embedded: every accepted message completes within 10 s of the restart on the same data directory', async () => {
    const r = await measureEmbeddedRecovery();
    console.log(`embedded recovery: ${JSON.stringify(r)}`);
    // Something was still to do when the hub died, or the test proves nothing.
    expect(r.missingAtCrash).toBeGreaterThan(0);
    expect(r.catchUpMs).toBeLessThan(10_000);
  }, 240_000);

  it('PostgreSQL + NATS: the jobs of a process that died are taken over by the other within 10 s', async () => {
    const r = await measureTakeover({ databaseUrl: TEST_DATABASE_URL, natsUrl: TEST_NATS_URL });
    console.log(`takeover: ${JSON.stringify(r)}`);
    expect(r.missingAtKill).toBeGreaterThan(0);
    // The victim's jobs come back once their lease (no longer heartbeated) runs out; the
    // application answers each call after appDelayMs, which is not the hub's time.
    expect(r.takeoverMs).toBeLessThan(10_000 + r.appDelayMs);
  }, 240_000);
});
