import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { BATCH_MAX_BYTES, IdMap, RecentIds, StreamWriter, approxBytes, hashId, hashUuidWords } from './router.protocol.js';

/** Shaped like the protocol's messages: one body field holding the message's fields. */
type Msg = { item: { n: number; payload_json: Buffer } } | { batch: { messages: Msg[] } };

/** A stream whose writes complete on a later turn, as an HTTP/2 stream's do. */
function fakeStream() {
  const written: Msg[] = [];
  const callbacks: Array<() => void> = [];
  return {
    written,
    writableEnded: false,
    destroyed: false,
    write(msg: Msg, cb: (err?: Error | null) => void): boolean {
      written.push(msg);
      callbacks.push(() => cb());
      return true;
    },
    /** Completes the writes handed over so far (one turn of the event loop). */
    turn(): void {
      for (const cb of callbacks.splice(0)) cb();
    },
  };
}

const wrap = (messages: Msg[]): Msg => ({ batch: { messages } });
const one = (n: number, bytes = 10): Msg => ({ item: { n, payload_json: Buffer.alloc(bytes) } });
const nOf = (m: Msg): number => ('item' in m ? m.item.n : NaN);
/** The messages in the order the peer sees them. */
const flat = (ms: Msg[]): number[] => ms.flatMap((m) => ('batch' in m ? m.batch.messages.map(nOf) : [nOf(m)]));

describe('StreamWriter', () => {
  it('writes a message to an idle stream at once, alone', () => {
    const s = fakeStream();
    const w = new StreamWriter<Msg>(s, wrap, () => 65_536);
    w.write(one(1));
    expect(s.written).toEqual([one(1)]);
  });

  it('sends what queued during a write as one batch when it completes, in order', () => {
    const s = fakeStream();
    const w = new StreamWriter<Msg>(s, wrap, () => 65_536);
    for (let n = 1; n <= 5; n++) w.write(one(n));
    expect(s.written).toHaveLength(1);
    s.turn();
    expect(s.written).toHaveLength(2);
    expect(s.written[1]).toEqual({ batch: { messages: [one(2), one(3), one(4), one(5)] } });
    w.write(one(6));
    s.turn();
    s.turn();
    // The stream went idle after the batch: the next message is written alone again.
    w.write(one(7));
    expect(flat(s.written)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(s.written.at(-1)).toEqual(one(7));
  });

  it('keeps each batch within what the peer reads (and sends a larger message alone)', () => {
    const s = fakeStream();
    const limit = 4_096;
    const w = new StreamWriter<Msg>(s, wrap, () => limit);
    w.write(one(0));
    for (let n = 1; n <= 40; n++) w.write(one(n, n === 20 ? 10_000 : 500));
    for (let i = 0; i < 50; i++) s.turn();
    expect(flat(s.written)).toEqual(Array.from({ length: 41 }, (_, n) => n));
    for (const m of s.written) {
      if ('batch' in m) expect(m.batch.messages.reduce((sum, x) => sum + approxBytes(x), 0)).toBeLessThanOrEqual(limit);
    }
    expect(s.written.some((m) => !('batch' in m) && nOf(m) === 20)).toBe(true);
  });

  it('never batches for a peer that does not read batches (an older worker or router)', () => {
    const s = fakeStream();
    const w = new StreamWriter<Msg>(s, wrap, () => 0);
    for (let n = 1; n <= 5; n++) w.write(one(n));
    s.turn();
    expect(s.written.every((m) => !('batch' in m))).toBe(true);
    expect(flat(s.written)).toEqual([1, 2, 3, 4, 5]);
  });

  it('caps a batch at 1 MiB whatever the peer allows', () => {
    const s = fakeStream();
    const w = new StreamWriter<Msg>(s, wrap, () => 64 * 1024 * 1024);
    w.write(one(0));
    for (let n = 1; n <= 8; n++) w.write(one(n, 300_000));
    s.turn();
    const batch = s.written[1] as { batch: { messages: Msg[] } };
    expect(batch.batch.messages).toHaveLength(3);
    expect(batch.batch.messages.reduce((sum, x) => sum + approxBytes(x), 0)).toBeLessThanOrEqual(BATCH_MAX_BYTES);
  });

  it('flush hands over everything queued, in order, before the stream ends; nothing is written after it ended', () => {
    const s = fakeStream();
    const w = new StreamWriter<Msg>(s, wrap, () => 65_536);
    for (let n = 1; n <= 4; n++) w.write(one(n));
    w.flush();
    expect(flat(s.written)).toEqual([1, 2, 3, 4]);
    s.writableEnded = true;
    w.write(one(5));
    s.turn();
    expect(flat(s.written)).toEqual([1, 2, 3, 4]);
  });
});

describe('RecentIds', () => {
  it('knows an id seen lately, and forgets it only after 2 × size newer ones', () => {
    const ids = new RecentIds(3);
    expect(ids.seen('a')).toBe(false);
    expect(ids.seen('a')).toBe(true);
    for (const id of ['b', 'c', 'd', 'e']) expect(ids.seen(id)).toBe(false);
    expect(ids.seen('a')).toBe(true);
    for (const id of ['f', 'g', 'h']) ids.seen(id);
    expect(ids.seen('a')).toBe(false);
  });

  it('keeps UUIDs the same way, whatever their case, beside ids that are not UUIDs', () => {
    const ids = new RecentIds(4);
    const u = '0f8fad5b-d9cb-469f-a165-70867728950e';
    expect(ids.seen(u)).toBe(false);
    expect(ids.seen(u.toUpperCase())).toBe(true);
    expect(ids.seen('0f8fad5b-d9cb-469f-a165-70867728950f')).toBe(false);
    expect(ids.seen('0f8fad5b-d9cb-469f-a165-70867728950')).toBe(false); // 35 characters: not a UUID
    expect(ids.seen('0f8fad5b-d9cb-469f-a165-70867728950')).toBe(true);
    expect(ids.seen('0f8fad5bxd9cb-469f-a165-70867728950e')).toBe(false); // no dash at 8: not a UUID
    // u and the three after it filled a generation; three more start the next one
    for (const id of ['b', 'c', 'd']) ids.seen(id);
    expect(ids.seen(u)).toBe(true);
    ids.seen('e');
    expect(ids.seen(u)).toBe(false);
  });

  it('tells apart many UUIDs, random or sharing their leading bits (time-ordered), generation after generation', () => {
    const ids = new RecentIds(1_000);
    const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
    // Time-ordered: the same first 48 bits for runs of ids, as UUIDv7 made in one millisecond.
    const timeOrdered = Array.from({ length: 3_000 }, (_, i) => `0190a1b2-c3d4-7${hex(i >> 8, 3)}-8${hex(i & 0xff, 3)}-${hex(i * 7919, 12)}`);
    const random = Array.from({ length: 3_000 }, () => randomUUID());
    for (const list of [timeOrdered, random]) {
      for (let i = 0; i < list.length; i++) {
        expect(ids.seen(list[i]!)).toBe(false);
        expect(ids.seen(list[i]!)).toBe(true);
        // the one 999 back is still remembered (same or previous generation)
        if (i >= 999) expect(ids.seen(list[i - 999]!)).toBe(true);
      }
    }
    // 2 × size newer ones later, the first random ones are forgotten
    expect(ids.seen(random[0]!)).toBe(false);
  });
});

describe('IdMap', () => {
  it('does what a Map does with string keys: set, overwrite, get, has, delete, size, clear', () => {
    const m = new IdMap<number>();
    expect(m.get('a')).toBeUndefined();
    m.set('a', 1);
    m.set('b', 2);
    m.set('a', 3);
    expect([m.get('a'), m.get('b'), m.has('b'), m.has('c'), m.size]).toEqual([3, 2, true, false, 2]);
    expect(m.delete('a')).toBe(true);
    expect(m.delete('a')).toBe(false);
    expect([m.has('a'), m.size]).toEqual([false, 1]);
    m.clear();
    expect([m.size, m.has('b'), m.entriesNow()]).toEqual([0, false, []]);
  });

  it('keeps every entry through churn, bursts and shrinking, as a Map would', () => {
    const m = new IdMap<string>();
    const ref = new Map<string, string>();
    let n = 0;
    const add = () => {
      const id = randomUUID();
      m.set(id, `v${n}`);
      ref.set(id, `v${n++}`);
    };
    const drop = (k: number) => {
      for (const id of [...ref.keys()].slice(0, k)) {
        expect(m.delete(id)).toBe(true);
        ref.delete(id);
      }
    };
    // steady churn around 16 in flight (deleted slots pile up and are rebuilt), a burst to 5,000, back to a few
    for (let i = 0; i < 2_000; i++) {
      add();
      if (ref.size > 16) drop(1);
    }
    for (let i = 0; i < 5_000; i++) add();
    drop(ref.size - 3);
    for (let i = 0; i < 500; i++) {
      add();
      drop(1);
    }
    expect(m.size).toBe(ref.size);
    expect(new Map(m.entriesNow())).toEqual(ref);
    for (const [id, v] of ref) expect(m.get(id)).toBe(v);
    expect(m.keys().sort()).toEqual([...ref.keys()].sort());
    expect(m.values().sort()).toEqual([...ref.values()].sort());
  });

  it('walks a snapshot: entries may be deleted while it is walked', () => {
    const m = new IdMap<number>();
    for (let i = 0; i < 100; i++) m.set(`d${i}`, i);
    for (const [id, v] of m.entriesNow()) if (v % 2 === 0) m.delete(id);
    expect(m.size).toBe(50);
    expect(m.values().every((v) => v % 2 === 1)).toBe(true);
  });
});

describe('the tables\' hashes against ids made to collide (a worker picks its message ids)', () => {
  // Strings that differ only above bit 9 of two code units: under an unseeded FNV-1a their low
  // 10 bits (a 1,024-slot table's index) are all the same.
  const crafted = Array.from({ length: 2_000 }, (_, k) => `id-${String.fromCharCode(0x400 * (1 + (k % 60)) + 0x41, 0x400 * (1 + Math.floor(k / 60)) + 0x42)}`);
  const fnv = (id: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
    return h >>> 0;
  };

  it('spreads strings that share one slot under a fixed hash', () => {
    expect(new Set(crafted).size).toBe(2_000);
    expect(new Set(crafted.map((id) => fnv(id) & 1023)).size).toBe(1);
    // 2,000 random keys fill ~880 of 1,024 slots
    expect(new Set(crafted.map((id) => hashId(id) & 1023)).size).toBeGreaterThan(700);
    const m = new IdMap<number>();
    crafted.forEach((id, i) => m.set(id, i));
    expect(crafted.every((id, i) => m.get(id) === i)).toBe(true);
  });

  it('spreads UUIDs that differ only in high bits of one word', () => {
    const w = new Uint32Array(4);
    const slots = new Set<number>();
    for (let k = 0; k < 2_000; k++) {
      w.set([(k << 10) >>> 0, 0x12345678, 0x9abcdef0, 0x0fedcba9]);
      slots.add(hashUuidWords(w) & 1023);
    }
    expect(slots.size).toBeGreaterThan(700);
  });
});
