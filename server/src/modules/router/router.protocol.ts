/**
 * The wire schema `plexus.router.v1` (proto/router.proto), loaded at run time with
 * @grpc/proto-loader, and the shapes the router and the worker SDK exchange. Field names keep the
 * proto's snake_case (`keepCase`), so a message reads the same in TypeScript, Python and the
 * .proto file. Incoming messages are checked with zod at the edge (router.grpc.ts, worker SDK):
 * protobuf guarantees types, not presence or sizes.
 */
import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { z } from 'zod';

export const PROTO_PATH = fileURLToPath(new URL('../../../../proto/router.proto', import.meta.url));
export const PROTO_PACKAGE = 'plexus.router.v1';

export interface RouterServiceDefinition {
  service: grpc.ServiceDefinition;
  client: grpc.ServiceClientConstructor;
}

let loaded: RouterServiceDefinition | undefined;

/** The Router service, for the server (service) and for workers (client constructor). */
export function loadRouterProto(): RouterServiceDefinition {
  if (loaded) return loaded;
  const def = protoLoader.loadSync(PROTO_PATH, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { plexus: { router: { v1: { Router: grpc.ServiceClientConstructor } } } };
  const client = pkg.plexus.router.v1.Router;
  loaded = { service: client.service, client };
  return loaded;
}

export interface Header {
  uuid: string;
  tenant: string;
  timestamp_unix_ms: number;
  timeout_ms: number;
  major: number;
  minor: number;
}
export interface Command {
  header: Header;
  target: string;
  command: string;
  context_json: Buffer;
  payload_json: Buffer;
}
export interface Event {
  header: Header;
  topic: string;
  event: string;
  reference_uuid: string;
  payload_json: Buffer;
}
export interface ComponentOffer {
  name: string;
  version: string;
  functions: string[];
  commands_json: Buffer;
  configuration_keys_json: Buffer;
}
export interface Hello {
  worker_id: string;
  enrolment_secret: string;
  credential: string;
  components: ComponentOffer[];
  concurrency: number;
  configuration_json: Buffer;
  subscriptions: string[];
  sdk: string;
  /** Batches the worker reads (RouterMessage.batch), in bytes; 0: none. */
  batch_max_bytes: number;
}
export interface Welcome {
  worker_id: string;
  tenant: string;
  credential: string;
  lease_ms: number;
  heartbeat_ms: number;
  configuration_json: Buffer;
  configuration_version: number;
  aggregator: string;
  instance_id: string;
  /** Batches the router reads (WorkerMessage.batch), in bytes; 0: none. */
  batch_max_bytes: number;
}
export interface Delivery {
  delivery_id: string;
  component: string;
  version: string;
  function: string;
  attempt: number;
  payload_json: Buffer;
  deadline_unix_ms: number;
}
export interface StepOutcome {
  delivery_id: string;
  result_json: Buffer;
  error?: { message: string; kind: string; retry_after_ms: number } | null;
}

/** What a worker sends: exactly one body (the proto's oneof, in proto-loader's `body` field). */
export type WorkerMessage =
  | { hello: Hello }
  | { outcome: StepOutcome }
  | { receipt: { uuid: string } }
  | { heartbeat: { delivery_ids: string[]; draining?: boolean } }
  | { command: Command }
  | { event: Event }
  | { config_request: { uuid: string; component: string } }
  | { configuration: { uuid: string; configuration_json: Buffer } }
  | { batch: { messages: WorkerMessage[] } };

export type RouterMessage =
  | { welcome: Welcome }
  | { refused: { code: string; message: string } }
  | { delivery: Delivery }
  | { cancel: { delivery_id: string; reason: string } }
  | { drain: { reason: string } }
  | { command: Command }
  | { event: Event }
  | { receipt: { uuid: string } }
  | { config_reply: { reference_uuid: string; config_json: Buffer; error: string } }
  | { configuration_reply: { reference_uuid: string; configuration_json: Buffer; version: number; error: string } }
  | { batch: { messages: RouterMessage[] } };

// ---- validation at the edge ----

const id = (what: string, max = 200) => z.string().min(1, `${what} is missing`).max(max, `${what} is longer than ${max} characters`);
const bytes = z.instanceof(Buffer);

export const HeaderIn = z.object({
  uuid: id('header.uuid', 100),
  tenant: z.string().max(100),
  timestamp_unix_ms: z.number(),
  timeout_ms: z.number().int().min(0).max(3_600_000),
  major: z.number().int().min(0),
  minor: z.number().int().min(0),
});

export const ComponentOfferIn = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,99}$/, 'component name must be 1-100 characters of a-z 0-9 . _ -'),
  version: z.string().regex(/^\d+(\.\d+){0,2}([-+][0-9A-Za-z.-]+)?$/, 'component version must look like 1, 1.2 or 1.2.3'),
  functions: z.array(id('function', 200)).max(500),
  commands_json: bytes,
  configuration_keys_json: bytes,
});

export const HelloIn = z.object({
  worker_id: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'worker_id must be 1-100 characters of A-Z a-z 0-9 _ . -'),
  enrolment_secret: z.string().max(500),
  credential: z.string().max(500),
  components: z.array(ComponentOfferIn).min(1, 'a worker must offer at least one component').max(200),
  concurrency: z.number().int().min(0).max(10_000),
  configuration_json: bytes,
  subscriptions: z.array(z.string().max(200)).max(200),
  sdk: z.string().max(200),
  batch_max_bytes: z.number().int().min(0),
});

export const StepOutcomeIn = z.object({
  delivery_id: id('delivery_id', 100),
  result_json: bytes,
  error: z.object({ message: z.string(), kind: z.string(), retry_after_ms: z.number() }).nullish(),
});

export const CommandIn = z.object({
  header: HeaderIn,
  target: id('target', 200),
  command: id('command', 200),
  context_json: bytes,
  payload_json: bytes,
});

export const EventIn = z.object({
  header: HeaderIn,
  topic: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'topic must be 1-64 characters of A-Z a-z 0-9 _ -'),
  event: id('event', 100),
  reference_uuid: z.string().max(100),
  payload_json: bytes,
});

// ---- writing ----

/** The most a batch carries whatever the peer allows: a batch is handled in one go by its receiver. */
export const BATCH_MAX_BYTES = 1024 * 1024;
const BATCH_MAX_MESSAGES = 256;

/** The part of a stream StreamWriter uses (grpc-js's duplex call streams). */
interface WritableStream<M> {
  write(msg: M, cb: (err?: Error | null) => void): boolean;
  readonly writableEnded: boolean;
  readonly destroyed: boolean;
}

/**
 * Writes messages to one gRPC stream; those sent while a write is in flight go out together as
 * one `batch` message when it completes (to a peer that said it reads batches).
 *
 * Why: grpc-js hands a stream one message per completed write, and an HTTP/2 write completes on a
 * later turn of the event loop, so a stream carried at most one message per turn. Under a burst
 * (a collection, a busy turn) hundreds of messages queued behind each other and a command on
 * loopback at half load waited up to ~100 ms. Nothing waits on purpose: a message sent to an idle
 * stream is written at once, alone, as before.
 */
export class StreamWriter<M extends object> {
  private pending: M[] = [];
  private writing = false;

  constructor(
    private readonly stream: WritableStream<M>,
    private readonly wrap: (messages: M[]) => M,
    /** What the peer reads in one batch; 0: never batch. Read at each write (it is set at welcome). */
    private readonly peerBatchBytes: () => number,
  ) {}

  get closed(): boolean {
    return this.stream.writableEnded || this.stream.destroyed;
  }

  write(msg: M): void {
    if (this.closed) return;
    const limit = Math.min(BATCH_MAX_BYTES, this.peerBatchBytes());
    if (limit <= 0 && this.pending.length === 0) {
      this.stream.write(msg, noop);
      return;
    }
    if (this.writing) {
      this.pending.push(msg);
      return;
    }
    this.writing = true;
    this.stream.write(msg, this.written);
  }

  private readonly written = (): void => {
    if (this.pending.length === 0 || this.closed) {
      this.writing = false;
      return;
    }
    this.stream.write(this.next(), this.written);
  };

  /**
   * Hands everything queued to the stream now (before a refusal or the end of the stream, so that
   * nothing sent before it is lost or overtaken).
   */
  flush(): void {
    while (this.pending.length > 0 && !this.closed) this.stream.write(this.next(), noop);
  }

  /** Takes the next batch (or single message) off the queue, within the peer's size. */
  private next(): M {
    const limit = Math.min(BATCH_MAX_BYTES, this.peerBatchBytes());
    let take = 0;
    let bytes = 0;
    while (take < this.pending.length && take < BATCH_MAX_MESSAGES) {
      const size = approxBytes(this.pending[take]!);
      if (take > 0 && (limit <= 0 || bytes + size > limit)) break;
      bytes += size;
      take++;
    }
    const out = this.pending.splice(0, take);
    return out.length === 1 ? out[0]! : this.wrap(out);
  }
}

function noop(): void {}

/** An upper estimate of a message's encoded size: its byte and string fields, and room for the rest. */
export function approxBytes(msg: object): number {
  let n = 64;
  for (const body of Object.values(msg)) {
    if (body === null || typeof body !== 'object') continue;
    for (const v of Object.values(body as Record<string, unknown>)) {
      if (Buffer.isBuffer(v)) n += v.length + 8;
      else if (typeof v === 'string') n += 3 * v.length + 8;
      else if (Array.isArray(v)) n += v.reduce((sum: number, x: unknown) => sum + (typeof x === 'string' ? 3 * x.length + 8 : 64), 8);
      else n += 96;
    }
  }
  return n;
}

/**
 * Ids seen lately (message uuids, for deduplication): the last `size` to 2 × `size`, in two
 * generations. Dropping a Set's oldest entry one at a time made every later lookup of the oldest
 * skip the deleted slots before it, a cost paid on each message.
 *
 * A UUID is kept as its 16 bytes in an open-addressed table of typed arrays, not as a string in a
 * Set. At tens of thousands of messages a second, the id strings held for a generation (a second
 * or so) and the Sets' growing tables were most of what the router and the SDK moved into the old
 * generation: it filled within half a minute, and from then on full collections came every few
 * seconds, each pausing the event loop and making the following scavenges slower. The tables are
 * allocated once and reused, so remembering an id allocates nothing. A UUID's case does not matter
 * (it is the same UUID). Ids that are not UUIDs (the protocol allows any string up to 100
 * characters) go to a plain Set per generation.
 */
export class RecentIds {
  private current: IdTable;
  private previous: IdTable;

  constructor(private readonly size: number) {
    this.current = new IdTable(size);
    this.previous = new IdTable(size);
  }

  /** Whether `id` was seen lately; remembers it either way. */
  seen(id: string): boolean {
    if (!parseUuid(id, UUID_WORDS)) {
      if (this.current.others.has(id) || this.previous.others.has(id)) return true;
      this.current.addOther(id);
    } else {
      if (this.current.has(UUID_WORDS) || this.previous.has(UUID_WORDS)) return true;
      this.current.add(UUID_WORDS);
    }
    if (this.current.count >= this.size) {
      const oldest = this.previous;
      oldest.clear();
      this.previous = this.current;
      this.current = oldest;
    }
    return false;
  }
}

/** The four 32-bit words of the UUID being looked up (one lookup at a time: no allocation). */
const UUID_WORDS = new Uint32Array(4);

/** `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, either case) → its 128 bits in `out`; false if `id` is not one. */
function parseUuid(id: string, out: Uint32Array): boolean {
  if (id.length !== 36) return false;
  let word = 0;
  let nibbles = 0;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false; // '-'
      continue;
    }
    let v: number;
    if (c >= 48 && c <= 57) v = c - 48;
    else if (c >= 97 && c <= 102) v = c - 87;
    else if (c >= 65 && c <= 70) v = c - 55;
    else return false;
    word = (word << 4) | v;
    if (++nibbles % 8 === 0) {
      out[nibbles / 8 - 1] = word;
      word = 0;
    }
  }
  return true;
}

/** One generation of RecentIds: UUIDs in linear-probed slots of 4 words, at most half full. */
class IdTable {
  private readonly words: Uint32Array;
  private readonly used: Uint8Array;
  private readonly mask: number;
  count = 0;
  readonly others = new Set<string>();

  constructor(size: number) {
    let slots = 16;
    while (slots < 2 * size) slots *= 2;
    this.words = new Uint32Array(slots * 4);
    this.used = new Uint8Array(slots);
    this.mask = slots - 1;
  }

  has(w: Uint32Array): boolean {
    for (let slot = this.slotOf(w); this.used[slot] === 1; slot = (slot + 1) & this.mask) {
      const at = slot * 4;
      if (this.words[at] === w[0] && this.words[at + 1] === w[1] && this.words[at + 2] === w[2] && this.words[at + 3] === w[3]) return true;
    }
    return false;
  }

  /** Adds an id known to be absent. */
  add(w: Uint32Array): void {
    let slot = this.slotOf(w);
    while (this.used[slot] === 1) slot = (slot + 1) & this.mask;
    this.used[slot] = 1;
    this.words.set(w, slot * 4);
    this.count++;
  }

  addOther(id: string): void {
    this.others.add(id);
    this.count++;
  }

  clear(): void {
    this.used.fill(0);
    this.others.clear();
    this.count = 0;
  }

  /** All four words mixed: time-ordered UUIDs (v1, v7) share their leading bits. */
  private slotOf(w: Uint32Array): number {
    return hashUuidWords(w) & this.mask;
  }
}

/** IdMap's slots without an entry: never used, or emptied (lookups probe past those). */
const EMPTY = 0;
const GONE = 1;

/**
 * Entries keyed by message or delivery id that come and go with each message (receipts awaited,
 * command answers awaited, deliveries held or running): the Map operations these tables use, on
 * an open-addressed table of two plain arrays.
 *
 * Not a Map: a Map that gains and loses an entry per message rehashes every few dozen changes, and
 * V8 links each discarded table to the one that replaced it (so that live iterators can follow).
 * Once one of these tables is in the old generation (as the live one is after any full
 * collection), the link keeps its successor, and the successor's entries, alive through the next
 * scavenge, which promotes them, and so on down the chain. From the first full collection on, the
 * router's process promoted about 1.5–2 KB per call or command (30 MB/s), collected the old
 * generation every few seconds, and the command p99 at half load went from 3–5 ms to 8–31 ms.
 * Not a dictionary object either: its keys are internalized, a string in the old generation per
 * message. Here a slot is emptied when its entry goes, and a table that is replaced is emptied too,
 * so nothing old points at anything young for longer than an entry lives.
 */
export class IdMap<V> {
  /** A key, EMPTY, or GONE (deleted: lookups probe past it). */
  private ids: (string | typeof EMPTY | typeof GONE)[] = new Array<string | typeof EMPTY>(16).fill(EMPTY);
  private vals: (V | undefined)[] = new Array<V | undefined>(16).fill(undefined);
  private mask = 15;
  private count = 0;
  /** Live entries and GONE slots. */
  private used = 0;

  get size(): number {
    return this.count;
  }

  get(id: string): V | undefined {
    const at = this.find(id);
    return at < 0 ? undefined : this.vals[at];
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  set(id: string, value: V): void {
    const at = this.find(id);
    if (at >= 0) {
      this.vals[at] = value;
      return;
    }
    // At most half the slots used, live or GONE; a table mostly GONE is rebuilt at its size.
    if (2 * (this.used + 1) > this.ids.length) this.resize(4 * (this.count + 1) > this.ids.length ? 2 * this.ids.length : this.ids.length);
    let slot = hashId(id) & this.mask;
    while (this.ids[slot] !== EMPTY && this.ids[slot] !== GONE) slot = (slot + 1) & this.mask;
    if (this.ids[slot] === EMPTY) this.used++;
    this.ids[slot] = id;
    this.vals[slot] = value;
    this.count++;
  }

  delete(id: string): boolean {
    const at = this.find(id);
    if (at < 0) return false;
    this.ids[at] = GONE;
    this.vals[at] = undefined;
    this.count--;
    // Shrinks after a burst, with room to grow again before the next resize.
    if (this.ids.length > 64 && 8 * this.count < this.ids.length) this.resize(this.ids.length / 2);
    return true;
  }

  clear(): void {
    this.ids.fill(EMPTY);
    this.vals.fill(undefined);
    this.count = 0;
    this.used = 0;
  }

  /** A snapshot: the table may change while it is walked. */
  keys(): string[] {
    return this.entriesNow().map(([k]) => k);
  }

  /** A snapshot: the table may change while it is walked. */
  values(): V[] {
    return this.entriesNow().map(([, v]) => v);
  }

  /** A snapshot: the table may change while it is walked. */
  entriesNow(): [string, V][] {
    const out: [string, V][] = [];
    for (let i = 0; i < this.ids.length; i++) {
      const id = this.ids[i];
      if (typeof id === 'string') out.push([id, this.vals[i] as V]);
    }
    return out;
  }

  private find(id: string): number {
    for (let slot = hashId(id) & this.mask; this.ids[slot] !== EMPTY; slot = (slot + 1) & this.mask) {
      if (this.ids[slot] === id) return slot;
    }
    return -1;
  }

  private resize(slots: number): void {
    const ids = this.ids;
    const vals = this.vals;
    this.ids = new Array<string | typeof EMPTY>(slots).fill(EMPTY);
    this.vals = new Array<V | undefined>(slots).fill(undefined);
    this.mask = slots - 1;
    this.used = this.count;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (typeof id !== 'string') continue;
      let slot = hashId(id) & this.mask;
      while (this.ids[slot] !== EMPTY) slot = (slot + 1) & this.mask;
      this.ids[slot] = id;
      this.vals[slot] = vals[i];
    }
    // The old arrays may be in the old generation: emptied, they keep no entry alive.
    ids.fill(EMPTY);
    vals.fill(undefined);
  }
}

/**
 * Chosen per process. Workers pick their message ids (any string up to 100 characters), and these
 * open-addressed tables probe linearly: ids made to share a slot under a fixed hash would turn
 * every lookup into a walk of all of them. With a seed they cannot be made in advance (this is no
 * cryptographic guarantee, the same defence V8 gives its own string hashes).
 */
const HASH_SEED = randomInt(0x1_0000_0000) | 0;

/** Murmur3's finalizer: every bit of `h` reaches the low bits a table's mask keeps. */
function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** FNV-1a over the UTF-16 code units from a seeded start, finalized. Exported for its tests. */
export function hashId(id: string): number {
  let h = HASH_SEED ^ 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return mix32(h);
}

/** A UUID's four words, seeded and finalized (see HASH_SEED). Exported for its tests. */
export function hashUuidWords(w: Uint32Array): number {
  return mix32(Math.imul(w[0]! ^ HASH_SEED, 0x9e3779b1) ^ Math.imul(w[1]!, 0x85ebca6b) ^ Math.imul(w[2]!, 0xc2b2ae35) ^ Math.imul(w[3]!, 0x27d4eb2f));
}

/** JSON in a bytes field; empty means undefined. Throws a SyntaxError naming the field. */
export function parseJsonBytes(buf: Buffer | undefined, field: string): unknown {
  if (!buf || buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new SyntaxError(`${field} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

export function jsonBytes(value: unknown): Buffer {
  return value === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(value), 'utf8');
}

/** Semantic version `a[.b[.c]]` → numbers (missing parts 0). */
export function parseVersion(v: string): [number, number, number] {
  const [a, b, c] = v.split(/[-+]/)[0]!.split('.').map((n) => Number.parseInt(n, 10));
  return [a ?? 0, b ?? 0, c ?? 0];
}

/**
 * Whether an offered version satisfies a node's pin: none → any; `2` → major 2; `2.1` → 2.1.x;
 * `2.1.3` → exactly that.
 */
export function versionMatches(offered: string, pin: string | undefined): boolean {
  if (pin === undefined || pin === '') return true;
  const want = pin.split('.');
  const have = parseVersion(offered);
  return want.every((p, i) => Number.parseInt(p, 10) === have[i]);
}

/** `name` or `name@major` (what an enrolment allows) covers the offer `name@version`. */
export function allowedBy(allowed: readonly string[], name: string, version: string): boolean {
  return allowed.some((a) => {
    if (a === '*') return true;
    const [n, v] = a.split('@');
    return n === name && versionMatches(version, v);
  });
}
