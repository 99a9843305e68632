/**
 * Typed configuration, parsed once at boot from `PLEXUS_*` environment variables.
 * Every variable is declared (and documented) here; nothing else reads `process.env`.
 * A bad value stops start-up with one line naming the variable and the problem.
 */
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { AppError } from './errors.js';
import { parseAllowedHosts, type OutboundPolicy } from './outbound/index.js';

const port = z.coerce
  .number({ error: 'must be a port number' })
  .int('must be a whole number')
  .min(0, 'must be between 0 and 65535')
  .max(65535, 'must be between 0 and 65535');

const positiveInt = z.coerce.number({ error: 'must be a number' }).int('must be a whole number').positive('must be positive');

/** Durations such as `7d`, `12h`, `30m`, `45s`, `500ms` or plain milliseconds. */
const duration = z.string().transform((raw, ctx) => {
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(raw.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: 'must be a duration such as 7d, 12h, 30m, 45s or 500ms' });
    return z.NEVER;
  }
  const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[(m[2] ?? 'ms') as 'ms'];
  return Number(m[1]) * unitMs;
});

const postgresUrl = z
  .string()
  .refine((v) => /^postgres(ql)?:\/\/.+/.test(v), 'must be a postgres:// or postgresql:// URL');

/**
 * Whose X-Forwarded-For to believe for the client's address (login rate limit per address,
 * audit): `true` (any hop), a hop count, or addresses / CIDRs of the proxies, comma-separated.
 */
const trustProxy = z.string().transform((v, ctx): boolean | number | string[] => {
  const s = v.trim();
  if (s === 'true' || s === 'false') return s === 'true';
  if (/^\d+$/.test(s)) return Number(s);
  const entries = s.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = entries.find((x) => {
    const [addr, prefix, ...rest] = x.split('/');
    const family = net.isIP(addr ?? '');
    if (!family || rest.length > 0) return true;
    return prefix !== undefined && !(/^\d+$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128));
  });
  if (entries.length === 0 || bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: `must be true, false, a hop count, or proxy addresses / CIDRs separated by commas${bad ? ` (${JSON.stringify(bad)} is none)` : ''}` });
    return z.NEVER;
  }
  return entries;
});

const allowedHosts = z.string().transform((v, ctx): string[] => {
  const parsed = parseAllowedHosts(v);
  if ('problem' in parsed) {
    ctx.addIssue({ code: 'custom', message: `must be host names, IP addresses or CIDRs separated by commas (${parsed.problem})` });
    return z.NEVER;
  }
  return parsed.entries;
});

const byteCount = positiveInt.pipe(z.number().min(1_024, 'must be at least 1024 (bytes)'));

const natsUrl = z.string().refine((v) => /^(nats|tls):\/\/.+/.test(v), 'must be a nats:// URL');

const logLevel = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** The raw environment schema: one key per variable, with its default. */
const EnvSchema = z.object({
  /** `production` makes secrets mandatory instead of generated on first start. */
  NODE_ENV: z.string().default('development'),
  /** Address every listener binds. */
  PLEXUS_HOST: z.string().min(1).default('127.0.0.1'),
  /** The one HTTP origin: REST, GraphQL, webhooks, cockpit. */
  PLEXUS_HTTP_PORT: port.default(8080),
  /** Connector over mutual TLS (client certificates). */
  PLEXUS_MTLS_PORT: port.default(8443),
  /**
   * Behind a reverse proxy: which proxies' X-Forwarded-For gives the client's address. Off by
   * default, since a client could otherwise name any address it likes.
   */
  PLEXUS_TRUST_PROXY: trustProxy.default(false),
  /** Worker ↔ router gRPC. */
  PLEXUS_GRPC_PORT: port.default(9090),
  /** Embedded storage (PGlite), generated keys, the bootstrap admin password file. */
  PLEXUS_DATA_DIR: z.string().min(1).default('./.plexus'),
  /** Use a PostgreSQL server instead of embedded PGlite. */
  PLEXUS_DATABASE_URL: postgresUrl.optional(),
  /** Size of the PostgreSQL connection pool. */
  PLEXUS_DATABASE_POOL_SIZE: positiveInt.default(10),
  /** Use NATS JetStream as the bus instead of the database-backed one. */
  PLEXUS_NATS_URL: natsUrl.optional(),
  PLEXUS_LOG_LEVEL: logLevel.default('info'),
  /** Password of the bootstrap `admin` user on first start; random (and printed once) if unset. */
  PLEXUS_ADMIN_PASSWORD: z.string().min(8, 'must be at least 8 characters').optional(),
  /** 32-byte key (base64 or hex) for secrets at rest; generated into the data dir if unset outside production. */
  PLEXUS_SECRET_KEY: z.string().min(1).optional(),
  /** Earlier values of PLEXUS_SECRET_KEY, comma-separated: still decrypt, re-encrypted under the current key at start. */
  PLEXUS_SECRET_PREVIOUS_KEYS: z.string().optional(),
  /**
   * Failed logins for one account (tenant + username) from one address within
   * PLEXUS_LOGIN_WINDOW before that address gets 429 for that account. An address is an IPv4
   * address or an IPv6 /64 (one host usually holds a whole /64).
   */
  PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER_ADDRESS: positiveInt.optional(),
  /** Deprecated name of PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER_ADDRESS (it counted per username from anywhere). */
  PLEXUS_LOGIN_MAX_ATTEMPTS: positiveInt.optional(),
  /** Failed logins from one address (IPv6: one /64), whatever the account, before it gets 429. */
  PLEXUS_LOGIN_MAX_ATTEMPTS_PER_ADDRESS: positiveInt.default(20),
  /**
   * Failed logins for one account from all addresses before addresses it never logged in from
   * get 429 for it. High, so that failures from elsewhere cannot lock a user out; addresses the
   * account logged in from in the last 30 days are never held by it.
   */
  PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER: positiveInt.default(100),
  /** The sliding window failed logins are counted in. */
  PLEXUS_LOGIN_WINDOW: duration.prefault('15m'),
  /** A session token expires after this long without use (sliding; at least 1m, as token lookups are cached for seconds). */
  PLEXUS_SESSION_TTL: duration.pipe(z.number().min(60_000, 'must be at least 1m')).prefault('12h'),
  /** A process without IAM tables of its own introspects tokens at this IAM base URL (e.g. http://iam:8080). */
  PLEXUS_IAM_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Persistent token (permission iam.token.introspect) used with PLEXUS_IAM_URL. */
  PLEXUS_IAM_TOKEN: z.string().min(1).optional(),
  /** How many times a queued message is tried before it is dead-lettered. */
  PLEXUS_BUS_MAX_ATTEMPTS: positiveInt.default(5),
  /**
   * How long a consumer holds a claimed message before it is redelivered elsewhere. Held jobs
   * are heartbeated once half of it is left, so this is also how soon the jobs of a process that
   * died (and stopped heartbeating) are taken over by the others: short, not the step time limit.
   */
  PLEXUS_BUS_LEASE: duration.prefault('6s'),
  /** Largest accepted webhook body in bytes. */
  PLEXUS_WEBHOOK_MAX_BYTES: positiveInt.default(10 * 1024 * 1024),
  /** Most fields a form-encoded webhook body may have (413 beyond): each one costs parsing and storage. */
  PLEXUS_WEBHOOK_MAX_FIELDS: positiveInt.default(1_000),
  /** Most elements an XML webhook body may have (413 beyond): XML parses at ~8 µs per element here. */
  PLEXUS_WEBHOOK_MAX_XML_ELEMENTS: positiveInt.default(10_000),
  /** How long finished executions are kept. */
  PLEXUS_EXECUTION_RETENTION: duration.prefault('7d'),
  /** Per step run, input and output bodies are stored up to this many bytes of JSON (the rest is cut). */
  PLEXUS_EXECUTION_STORED_BODY_BYTES: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more').default(65_536),
  /** Folders (comma-separated) from which tenants may register component directories; default <data dir>/components. */
  PLEXUS_COMPONENT_PATHS: z.string().optional(),
  /**
   * Whether steps (http-request, code `fetch`) and other tenant-driven calls (OAuth2 token refresh)
   * may reach loopback, private, link-local and other non-public addresses. A ceiling: with
   * `false` a node's `allowPrivateNetwork: true` is refused when its flow is saved. With `true` it
   * is also what nodes that do not say get.
   */
  PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  /** Non-public hosts every step may reach anyway: names, `*.suffix` names, IP addresses, CIDRs, comma-separated. */
  PLEXUS_STEPS_ALLOWED_HOSTS: allowedHosts.optional(),
  /** `off` switches the code component off: flows with a code node are refused when saved. */
  PLEXUS_CODE_STEPS: z.enum(['on', 'off'], { error: 'must be on or off' }).default('on'),
  /** Child processes that run code steps, in all (spawned when needed, gone after a minute idle). */
  PLEXUS_CODE_WORKERS: positiveInt.default(2),
  /** Heap limit of the isolate a code step runs in, in MB (at least 8). */
  PLEXUS_CODE_MEMORY_MB: positiveInt.pipe(z.number().min(8, 'must be at least 8')).default(64),
  /** CPU time one code step run may use (it also stops at its node's timeoutMs of wall time). */
  PLEXUS_CODE_CPU_TIME: duration.pipe(z.number().min(10, 'must be at least 10ms')).prefault('10s'),
  // OIH / elastic.io components (modules/components, components.oih*.ts).
  /** Child processes OIH components run in, in all (per tenant, spawned when needed, gone after a minute idle). */
  PLEXUS_COMPONENT_RUNNERS: positiveInt.default(4),
  /** Of those, how many one tenant may hold at once. */
  PLEXUS_COMPONENT_RUNNERS_PER_TENANT: positiveInt.default(2),
  /** Resident memory above which an OIH component process is killed (its step fails), in MB. */
  PLEXUS_COMPONENT_RUNNER_MEMORY_MB: positiveInt.pipe(z.number().min(64, 'must be at least 64')).default(512),
  /** Base URL OIH components reach the hub's platform services at (ELASTICIO_API_URI, object storage); default: the hub's own listening address. */
  PLEXUS_COMPONENT_API_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Largest object an OIH component may put in the object store. */
  PLEXUS_COMPONENT_OBJECT_MAX_BYTES: byteCount.default(10 * 1024 * 1024),
  /** Bytes one tenant's objects may hold in all. */
  PLEXUS_COMPONENT_OBJECT_STORE_BYTES: byteCount.default(1024 * 1024 * 1024),
  /** Director: `strict` refuses a spec its parser rejects (22); `lenient` stores it with the parser's problems. */
  PLEXUS_DIRECTOR_SPEC_VALIDATION: z.enum(['lenient', 'strict'], { error: 'must be lenient or strict' }).default('lenient'),
  /** Director: delay before the second attempt of a webhook delivery; each later one waits 3x longer (at most 4h). */
  PLEXUS_DIRECTOR_WEBHOOK_FIRST_RETRY: duration.prefault('10s'),
  /** Director: how long a webhook delivery is retried before it is given up as FAILED. */
  PLEXUS_DIRECTOR_WEBHOOK_RETRY_WINDOW: duration.prefault('24h'),
  /** Director: MB of query answers kept per process, served while the tenant's data is unchanged (exact); 0 keeps none. */
  PLEXUS_DIRECTOR_QUERY_CACHE_MB: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more').default(32),
  /** Upper bound for draining in-flight work on SIGTERM. */
  PLEXUS_SHUTDOWN_TIMEOUT: duration.prefault('15s'),
  // Per-tenant limits (modules/limits): the defaults; a platform admin overrides them per tenant.
  /** Webhook calls per second per tenant (per webhooks process); over it → 429 with Retry-After. */
  PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND: positiveInt.default(200),
  /** Webhook body bytes per second per tenant (per webhooks process); over it → 429 with Retry-After. */
  PLEXUS_LIMITS_WEBHOOK_BYTES_PER_SECOND: byteCount.default(20 * 1024 * 1024),
  /** Webhook body bytes per tenant arriving and not yet enqueued, per process; over it → 429 (413 for a body larger than all of it). */
  PLEXUS_LIMITS_WEBHOOK_IN_FLIGHT_BYTES: byteCount.default(32 * 1024 * 1024),
  /** Executions of a tenant running at once per orchestrator process; more wait in their queues. */
  PLEXUS_LIMITS_CONCURRENT_EXECUTIONS: positiveInt.default(100),
  /** Messages one execution may produce; the step that goes past it fails with a user error. */
  PLEXUS_LIMITS_MESSAGES_PER_EXECUTION: positiveInt.default(10_000),
  /** Code-step sandbox slots one tenant may hold at once. */
  PLEXUS_LIMITS_CODE_SLOTS: positiveInt.default(1),
  /** Webhook body bytes of all tenants arriving and not yet enqueued, per process; over it → 503 with Retry-After. */
  PLEXUS_WEBHOOK_IN_FLIGHT_BYTES: byteCount.default(128 * 1024 * 1024),

  // ---- operations (recovery and lifecycle)
  /** Stream and subject prefix on NATS: two installations (or test runs) can share one NATS server. */
  PLEXUS_NATS_PREFIX: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 of A-Z a-z 0-9 _ -').default('PLEXUS'),
  /** Set by npm for `npm start` / `npx plexus`: the hub then stops when npm's shell goes away (platform/lifecycle.ts). */
  npm_command: z.string().optional(),
  /**
   * Embedded PGlite's buffer cache (PostgreSQL `shared_buffers`), in bytes. PostgreSQL's 128 MB
   * default is touched at start and was 40 % of an idle hub's memory; 16 MB holds a small hub's
   * working set (docs/adr/0010-compiled-at-install.md). Raise it for large embedded databases.
   */
  PLEXUS_EMBEDDED_DB_BUFFER_BYTES: byteCount.pipe(z.number().min(1024 * 1024, 'must be at least 1048576 (1 MB)')).default(16 * 1024 * 1024),
  /**
   * `true`: V8 also recompiles embedded PGlite's hot WASM functions with its optimizing compiler,
   * for ~60–80 MB more memory, also at rest. Once warm, statements cost 10–15 % less CPU (an
   * insert + select microbench); a 10 s flow bench showed no gain (2,539 vs 2,618 executions/s:
   * compiling takes that long). Off by default, to keep an idle embedded hub within its memory
   * budget (docs/adr/0010-compiled-at-install.md).
   */
  PLEXUS_EMBEDDED_DB_WASM_OPTIMIZE: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  // ---- connector (issue 12): one-time tokens, client certificates, the mTLS listener
  /** How long an application's one-time token may wait to be redeemed. */
  PLEXUS_CONNECTOR_APP_TOKEN_TTL: duration.default(5 * 60_000),
  /** How long a runtime's one-time token may wait to be redeemed (an agent is often set up by hand). */
  PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL: duration.default(60 * 60_000),
  /** Validity of an issued client certificate; renew before it ends. */
  PLEXUS_CONNECTOR_CERT_VALIDITY: duration.default(90 * 86_400_000),
  /**
   * Worker threads that check certificate signing requests and sign client certificates (~3 ms of
   * CPU each, off the event loop); started at the first signing. 0: on the main thread.
   */
  PLEXUS_CONNECTOR_SIGNER_THREADS: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more').max(64, 'must be at most 64').default(2),
  /** The subject constants of issued certificates; `CN=<system auth id>` is added. */
  PLEXUS_CONNECTOR_SUBJECT: z
    .string()
    .regex(/^(O|OU|L|ST|C)=[^,=+"\\<>;#]+(,(O|OU|L|ST|C)=[^,=+"\\<>;#]+)*$/, 'must be attributes O=…,OU=…,L=…,ST=…,C=… separated by commas (no CN: it is the system auth id)')
    .default('O=Plexus,OU=Connector,L=Local,ST=Local,C=DE'),
  /** The CA certificate (PEM) to sign client certificates with, instead of the one generated into the database; with PLEXUS_CA_KEY_FILE. */
  PLEXUS_CA_CERT_FILE: z.string().min(1).optional(),
  /** The CA's private key (PEM: PKCS#8, PKCS#1 or SEC1), with PLEXUS_CA_CERT_FILE. */
  PLEXUS_CA_KEY_FILE: z.string().min(1).optional(),
  /** Base URL of the HTTP port as clients reach it (connectorURL, directorURL); default http://<PLEXUS_HOST>:<port>. */
  PLEXUS_PUBLIC_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Base URL of the mTLS port as clients reach it (certificateSecuredConnectorURL, event URLs); default https://<PLEXUS_HOST>:<mtls port>. */
  PLEXUS_MTLS_PUBLIC_URL: z.url({ protocol: /^https$/, error: 'must be an https URL' }).optional(),
  // Router (modules/router): gRPC workers on PLEXUS_GRPC_PORT.
  /** Logical name shared by every aggregator instance (router role) of one deployment. */
  PLEXUS_AGGREGATOR_NAME: z.string().regex(/^[A-Za-z0-9_.-]{1,100}$/, 'must be 1-100 characters of A-Z a-z 0-9 _ . -').default('plexus'),
  /** Largest gRPC message a worker may send or receive; a larger one ends that stream only. */
  PLEXUS_GRPC_MAX_MESSAGE_BYTES: byteCount.default(4 * 1024 * 1024),
  /** A worker silent (no heartbeat) for this long is taken for dead; its deliveries go to another worker. */
  PLEXUS_WORKER_LEASE: duration.pipe(z.number().min(200, 'must be at least 200ms').max(600_000, 'must be at most 10m')).prefault('10s'),
  /** A stream that has not sent its `hello` by then is closed. */
  PLEXUS_GRPC_HELLO_TIMEOUT: duration.pipe(z.number().min(100, 'must be at least 100ms')).prefault('10s'),
  /** PEM certificate and key files: the gRPC port serves TLS (then step credentials may reach workers). */
  PLEXUS_GRPC_TLS_CERT: z.string().optional(),
  PLEXUS_GRPC_TLS_KEY: z.string().optional(),
});

export type Config = Readonly<{
  env: string;
  isProduction: boolean;
  http: Readonly<{ host: string; port: number; mtlsPort: number; grpcPort: number; trustProxy: boolean | number | readonly string[] }>;
  dataDir: string;
  db: Readonly<{ url: string | undefined; poolSize: number }>;
  /** Started by npm (`npm start`, `npx plexus`): stop when npm goes away. */
  launchedByNpm: boolean;
  /** Embedded PGlite only (no PLEXUS_DATABASE_URL). */
  embeddedDb: Readonly<{ sharedBufferBytes: number; optimizeWasm: boolean }>;
  bus: Readonly<{ natsUrl: string | undefined; natsPrefix: string; maxAttempts: number; leaseMs: number }>;
  log: Readonly<{ level: z.infer<typeof logLevel> }>;
  iam: Readonly<{
    adminPassword: string | undefined;
    sessionTtlMs: number;
    login: Readonly<{ maxPerUserAddress: number; maxPerAddress: number; maxPerUser: number; windowMs: number }>;
    /** Remote introspection (PLEXUS_IAM_URL + PLEXUS_IAM_TOKEN); undefined: in-process. */
    remote: Readonly<{ url: string; token: string }> | undefined;
  }>;
  secrets: Readonly<{ key: string | undefined; previousKeys: readonly string[] }>;
  webhooks: Readonly<{ maxBytes: number; maxFields: number; maxXmlElements: number }>;
  executions: Readonly<{ retentionMs: number; storedBodyBytes: number }>;
  components: Readonly<{
    paths: readonly string[];
    codeSteps: boolean;
    codeWorkers: number;
    codeMemoryMb: number;
    codeCpuTimeMs: number;
  }>;
  /** OIH / elastic.io components: their processes and platform services. */
  oih: Readonly<{ runners: number; runnersPerTenant: number; runnerMemoryMb: number; apiUrl: string | undefined; objectMaxBytes: number; objectStoreBytes: number }>;
  director: Readonly<{ specValidation: 'lenient' | 'strict'; webhookFirstRetryMs: number; webhookRetryWindowMs: number; queryCacheBytes: number }>;
  connector: Readonly<{
    appTokenTtlMs: number;
    runtimeTokenTtlMs: number;
    certValidityMs: number;
    subject: string;
    signerThreads: number;
    caCertFile: string | undefined;
    caKeyFile: string | undefined;
    publicUrl: string | undefined;
    mtlsPublicUrl: string | undefined;
  }>;
  /** The operator's outbound network policy (platform/outbound). */
  outbound: Readonly<OutboundPolicy>;
  shutdownTimeoutMs: number;
  limits: Readonly<{
    /** Per-tenant defaults (PLEXUS_LIMITS_*), in the shape of contracts/limits.ts TenantLimits. */
    defaults: Readonly<{
      webhookRequestsPerSecond: number;
      webhookBytesPerSecond: number;
      webhookInFlightBytes: number;
      concurrentExecutions: number;
      messagesPerExecution: number;
      codeSlots: number;
    }>;
    /** PLEXUS_WEBHOOK_IN_FLIGHT_BYTES: all tenants together, per process. */
    webhookInFlightBytesTotal: number;
  }>;
  router: Readonly<{
    aggregatorName: string;
    maxMessageBytes: number;
    workerLeaseMs: number;
    helloTimeoutMs: number;
    tls: Readonly<{ certFile: string; keyFile: string }> | undefined;
  }>;
}>;

/** Parses the environment; throws one AppError listing every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // Empty strings count as unset: `PLEXUS_DATABASE_URL= npm start` should mean "embedded".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${String(i.path[0])}=${JSON.stringify(cleaned[String(i.path[0])] ?? '')} ${i.message}`);
    throw new AppError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, 'user');
  }
  const e = parsed.data;
  const isProduction = e.NODE_ENV === 'production';
  if (isProduction && !e.PLEXUS_SECRET_KEY) {
    throw new AppError('CONFIG_INVALID', 'invalid configuration: PLEXUS_SECRET_KEY is required when NODE_ENV=production', 'user');
  }
  if (Boolean(e.PLEXUS_CA_CERT_FILE) !== Boolean(e.PLEXUS_CA_KEY_FILE)) {
    throw new AppError('CONFIG_INVALID', 'invalid configuration: PLEXUS_CA_CERT_FILE and PLEXUS_CA_KEY_FILE must be set together', 'user');
  }
  if (Boolean(e.PLEXUS_GRPC_TLS_CERT) !== Boolean(e.PLEXUS_GRPC_TLS_KEY)) {
    throw new AppError('CONFIG_INVALID', 'invalid configuration: PLEXUS_GRPC_TLS_CERT and PLEXUS_GRPC_TLS_KEY must be set together', 'user');
  }
  if (Boolean(e.PLEXUS_IAM_URL) !== Boolean(e.PLEXUS_IAM_TOKEN)) {
    throw new AppError('CONFIG_INVALID', 'invalid configuration: PLEXUS_IAM_URL and PLEXUS_IAM_TOKEN must be set together', 'user');
  }
  return Object.freeze({
    env: e.NODE_ENV,
    isProduction,
    http: Object.freeze({ host: e.PLEXUS_HOST, port: e.PLEXUS_HTTP_PORT, mtlsPort: e.PLEXUS_MTLS_PORT, grpcPort: e.PLEXUS_GRPC_PORT, trustProxy: e.PLEXUS_TRUST_PROXY }),
    dataDir: path.resolve(e.PLEXUS_DATA_DIR),
    db: Object.freeze({ url: e.PLEXUS_DATABASE_URL, poolSize: e.PLEXUS_DATABASE_POOL_SIZE }),
    embeddedDb: Object.freeze({ sharedBufferBytes: e.PLEXUS_EMBEDDED_DB_BUFFER_BYTES, optimizeWasm: e.PLEXUS_EMBEDDED_DB_WASM_OPTIMIZE === 'true' }),
    launchedByNpm: e.npm_command !== undefined,
    bus: Object.freeze({ natsUrl: e.PLEXUS_NATS_URL, natsPrefix: e.PLEXUS_NATS_PREFIX, maxAttempts: e.PLEXUS_BUS_MAX_ATTEMPTS, leaseMs: e.PLEXUS_BUS_LEASE }),
    log: Object.freeze({ level: e.PLEXUS_LOG_LEVEL }),
    iam: Object.freeze({
      adminPassword: e.PLEXUS_ADMIN_PASSWORD,
      sessionTtlMs: e.PLEXUS_SESSION_TTL,
      login: Object.freeze({
        maxPerUserAddress: e.PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER_ADDRESS ?? e.PLEXUS_LOGIN_MAX_ATTEMPTS ?? 5,
        maxPerAddress: e.PLEXUS_LOGIN_MAX_ATTEMPTS_PER_ADDRESS,
        maxPerUser: e.PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER,
        windowMs: e.PLEXUS_LOGIN_WINDOW,
      }),
      remote: e.PLEXUS_IAM_URL && e.PLEXUS_IAM_TOKEN ? Object.freeze({ url: e.PLEXUS_IAM_URL.replace(/\/+$/, ''), token: e.PLEXUS_IAM_TOKEN }) : undefined,
    }),
    secrets: Object.freeze({
      key: e.PLEXUS_SECRET_KEY,
      previousKeys: Object.freeze((e.PLEXUS_SECRET_PREVIOUS_KEYS ?? '').split(',').map((k) => k.trim()).filter(Boolean)),
    }),
    webhooks: Object.freeze({ maxBytes: e.PLEXUS_WEBHOOK_MAX_BYTES, maxFields: e.PLEXUS_WEBHOOK_MAX_FIELDS, maxXmlElements: e.PLEXUS_WEBHOOK_MAX_XML_ELEMENTS }),
    executions: Object.freeze({ retentionMs: e.PLEXUS_EXECUTION_RETENTION, storedBodyBytes: e.PLEXUS_EXECUTION_STORED_BODY_BYTES }),
    components: Object.freeze({
      paths: Object.freeze(
        (e.PLEXUS_COMPONENT_PATHS ?? path.join(e.PLEXUS_DATA_DIR, 'components')).split(',').map((p) => p.trim()).filter(Boolean).map((p) => path.resolve(p)),
      ),
      codeSteps: e.PLEXUS_CODE_STEPS === 'on',
      codeWorkers: e.PLEXUS_CODE_WORKERS,
      codeMemoryMb: e.PLEXUS_CODE_MEMORY_MB,
      codeCpuTimeMs: e.PLEXUS_CODE_CPU_TIME,
    }),
    oih: Object.freeze({
      runners: e.PLEXUS_COMPONENT_RUNNERS,
      runnersPerTenant: e.PLEXUS_COMPONENT_RUNNERS_PER_TENANT,
      runnerMemoryMb: e.PLEXUS_COMPONENT_RUNNER_MEMORY_MB,
      apiUrl: e.PLEXUS_COMPONENT_API_URL,
      objectMaxBytes: e.PLEXUS_COMPONENT_OBJECT_MAX_BYTES,
      objectStoreBytes: e.PLEXUS_COMPONENT_OBJECT_STORE_BYTES,
    }),
    director: Object.freeze({
      specValidation: e.PLEXUS_DIRECTOR_SPEC_VALIDATION,
      webhookFirstRetryMs: e.PLEXUS_DIRECTOR_WEBHOOK_FIRST_RETRY,
      webhookRetryWindowMs: e.PLEXUS_DIRECTOR_WEBHOOK_RETRY_WINDOW,
      queryCacheBytes: e.PLEXUS_DIRECTOR_QUERY_CACHE_MB * 1024 * 1024,
    }),
    connector: Object.freeze({
      appTokenTtlMs: e.PLEXUS_CONNECTOR_APP_TOKEN_TTL,
      runtimeTokenTtlMs: e.PLEXUS_CONNECTOR_RUNTIME_TOKEN_TTL,
      certValidityMs: e.PLEXUS_CONNECTOR_CERT_VALIDITY,
      subject: e.PLEXUS_CONNECTOR_SUBJECT,
      signerThreads: e.PLEXUS_CONNECTOR_SIGNER_THREADS,
      caCertFile: e.PLEXUS_CA_CERT_FILE,
      caKeyFile: e.PLEXUS_CA_KEY_FILE,
      publicUrl: e.PLEXUS_PUBLIC_URL?.replace(/\/+$/, ''),
      mtlsPublicUrl: e.PLEXUS_MTLS_PUBLIC_URL?.replace(/\/+$/, ''),
    }),
    outbound: Object.freeze({
      allowPrivateNetwork: e.PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK === 'true',
      allowedHosts: Object.freeze(e.PLEXUS_STEPS_ALLOWED_HOSTS ?? []),
    }),
    shutdownTimeoutMs: e.PLEXUS_SHUTDOWN_TIMEOUT,
    limits: Object.freeze({
      defaults: Object.freeze({
        webhookRequestsPerSecond: e.PLEXUS_LIMITS_WEBHOOK_REQUESTS_PER_SECOND,
        webhookBytesPerSecond: e.PLEXUS_LIMITS_WEBHOOK_BYTES_PER_SECOND,
        webhookInFlightBytes: e.PLEXUS_LIMITS_WEBHOOK_IN_FLIGHT_BYTES,
        concurrentExecutions: e.PLEXUS_LIMITS_CONCURRENT_EXECUTIONS,
        messagesPerExecution: e.PLEXUS_LIMITS_MESSAGES_PER_EXECUTION,
        codeSlots: e.PLEXUS_LIMITS_CODE_SLOTS,
      }),
      webhookInFlightBytesTotal: e.PLEXUS_WEBHOOK_IN_FLIGHT_BYTES,
    }),
    router: Object.freeze({
      aggregatorName: e.PLEXUS_AGGREGATOR_NAME,
      maxMessageBytes: e.PLEXUS_GRPC_MAX_MESSAGE_BYTES,
      workerLeaseMs: e.PLEXUS_WORKER_LEASE,
      helloTimeoutMs: e.PLEXUS_GRPC_HELLO_TIMEOUT,
      tls: e.PLEXUS_GRPC_TLS_CERT && e.PLEXUS_GRPC_TLS_KEY ? Object.freeze({ certFile: path.resolve(e.PLEXUS_GRPC_TLS_CERT), keyFile: path.resolve(e.PLEXUS_GRPC_TLS_KEY) }) : undefined,
    }),
  });
}

// ------------------------------------------------------------ the admin CLI (`plexus <resource> <verb>`)

/** The variables the admin CLI reads on the user's machine; the hub reads none of them. */
const CliEnvSchema = z.object({
  /** Base of the user's config directory: the session lives in `$XDG_CONFIG_HOME/plexus` (else `~/.config/plexus`). */
  XDG_CONFIG_HOME: z.string().optional(),
  /** The user's home, for `~/.config/plexus` when XDG_CONFIG_HOME is unset. */
  HOME: z.string().optional(),
  /** Hub base URL for admin commands instead of the one `plexus login` stored (scripts, CI). */
  PLEXUS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** Bearer token for admin commands instead of the stored session, e.g. a service account's persistent token. */
  PLEXUS_TOKEN: z.string().min(1).optional(),
});

export type CliConfig = Readonly<{
  /** Directory of the stored session (`session.json`, mode 0600). */
  configDir: string;
  url: string | undefined;
  token: string | undefined;
}>;

/** Parses the admin CLI's environment; throws one AppError listing every bad variable. */
export function loadCliConfig(env: Record<string, string | undefined> = process.env): CliConfig {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([k, v]) => k in CliEnvSchema.shape && v !== undefined && v !== ''));
  const parsed = CliEnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${String(i.path[0])}=${JSON.stringify(cleaned[String(i.path[0])] ?? '')} ${i.message}`);
    throw new AppError('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`, 'user');
  }
  const e = parsed.data;
  // Relative XDG_CONFIG_HOME is invalid per the XDG spec and is ignored.
  const base = e.XDG_CONFIG_HOME && path.isAbsolute(e.XDG_CONFIG_HOME) ? e.XDG_CONFIG_HOME : path.join(e.HOME ?? os.homedir(), '.config');
  return Object.freeze({ configDir: path.join(base, 'plexus'), url: e.PLEXUS_URL?.replace(/\/+$/, ''), token: e.PLEXUS_TOKEN });
}
