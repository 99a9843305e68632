import { describe, expect, it } from 'vitest';
import { Batcher, flushResults, type BatchEntry } from './batcher.js';

/** A flush the test settles by hand, to hold a batch "in flight". */
function heldFlush<I>(): { batches: I[][]; release: (i: number) => void; flush: (batch: ReadonlyArray<BatchEntry<I, number>>) => Promise<void> } {
  const batches: I[][] = [];
  const releases: Array<() => void> = [];
  return {
    batches,
    release: (i) => releases[i]!(),
    flush: (batch) => {
      batches.push(batch.map((b) => b.item));
      return new Promise<void>((resolve) => {
        releases.push(() => {
          batch.forEach((b, k) => b.resolve(k));
          resolve();
        });
      });
    },
  };
}

describe('Batcher', () => {
  it('hands the calls of one turn to one flush and gives each caller its own result', async () => {
    const seen: number[][] = [];
    const b = new Batcher<number, number>({ maxBatch: 100, maxInFlight: 1, flush: flushResults(async (items) => (seen.push(items), items.map((x) => x * 10))) });
    const results = await Promise.all([1, 2, 3].map((x) => b.add(x)));
    expect(seen).toEqual([[1, 2, 3]]);
    expect(results).toEqual([10, 20, 30]);
  });

  it('grows the next batch while flushes are in flight, and flushes a full batch at once', async () => {
    const h = heldFlush<number>();
    const b = new Batcher<number, number>({ maxBatch: 3, maxInFlight: 1, flush: h.flush });
    const first = b.add(1);
    await new Promise((r) => setImmediate(r));
    expect(h.batches).toEqual([[1]]);
    // In flight: these wait, and grow into batches of at most 3.
    const rest = [2, 3, 4, 5].map((x) => b.add(x));
    await new Promise((r) => setImmediate(r));
    expect(h.batches).toHaveLength(1);
    h.release(0);
    await first;
    await new Promise((r) => setImmediate(r));
    expect(h.batches).toEqual([[1], [2, 3, 4]]);
    h.release(1);
    await new Promise((r) => setImmediate(r));
    expect(h.batches).toEqual([[1], [2, 3, 4], [5]]);
    h.release(2);
    expect(await Promise.all(rest)).toEqual([0, 1, 2, 0]);
    await b.idle();
  });

  it('rejects the entries a failing flush left open, and settles each entry only by its flush', async () => {
    const b = new Batcher<string, string>({
      maxBatch: 10,
      maxInFlight: 2,
      flush: async (batch) => {
        batch[0]!.resolve('first is fine');
        throw new Error('the statement failed');
      },
    });
    const [a, c] = [b.add('a'), b.add('c')];
    await expect(a).resolves.toBe('first is fine');
    await expect(c).rejects.toThrow('the statement failed');
  });

  it('resolves idle() only when nothing waits or flushes, and lets a caller take the waiting items', async () => {
    const h = heldFlush<number>();
    const b = new Batcher<number, number>({ maxBatch: 10, maxInFlight: 1, flush: h.flush });
    let isIdle = false;
    void b.add(1);
    void b.idle().then(() => (isIdle = true));
    await new Promise((r) => setImmediate(r));
    const late = b.add(2);
    const taken = b.take();
    expect(taken.map((t) => t.item)).toEqual([2]);
    taken[0]!.resolve(99);
    expect(await late).toBe(99);
    expect(isIdle).toBe(false);
    h.release(0);
    await new Promise((r) => setImmediate(r));
    expect(isIdle).toBe(true);
  });
});
