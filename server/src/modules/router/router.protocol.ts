/**
 * The wire schema `plexus.router.v1` (proto/router.proto), loaded at run time with
 * @grpc/proto-loader, and the shapes the router and the worker SDK exchange. Field names keep the
 * proto's snake_case (`keepCase`), so a message reads the same in TypeScript, Python and the
 * .proto file. Incoming messages are checked with zod at the edge (router.grpc.ts, worker SDK):
 * protobuf guarantees types, not presence or sizes.
 */
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
  | { heartbeat: { delivery_ids: string[] } }
  | { command: Command }
  | { event: Event }
  | { config_request: { uuid: string; component: string } }
  | { configuration: { uuid: string; configuration_json: Buffer } };

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
  | { configuration_reply: { reference_uuid: string; configuration_json: Buffer; version: number; error: string } };

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
