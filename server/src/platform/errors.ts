/**
 * One error type for the whole server. `kind` tells callers what to do with it:
 * - `user`: the caller sent something wrong; answer 4xx, never retry, dead-letter with the reason;
 * - `transient`: something outside us failed for now (network, 5xx, lock); retry later;
 * - `bug`: our own fault; answer a generic 500, log loudly with the stack.
 */
export type ErrorKind = 'user' | 'transient' | 'bug';

/** code → HTTP status and Compass GraphQL error_code. Codes are stable API. */
export const ERROR_CODES = {
  VALIDATION_FAILED: { status: 400, graphql: 22 },
  INVALID_JSON: { status: 400, graphql: 22 },
  INVALID_FLOW: { status: 400, graphql: 22 },
  BAD_REQUEST: { status: 400, graphql: 22 },
  UNAUTHENTICATED: { status: 401, graphql: 26 },
  INVALID_SIGNATURE: { status: 401, graphql: 26 },
  FORBIDDEN: { status: 403, graphql: 23 },
  /** A non-admin named another tenant in the `Tenant` header. */
  TENANT_FORBIDDEN: { status: 403, graphql: 23 },
  NOT_FOUND: { status: 404, graphql: 20 },
  ROUTE_NOT_FOUND: { status: 404, graphql: 20 },
  TENANT_NOT_FOUND: { status: 404, graphql: 25 },
  METHOD_NOT_ALLOWED: { status: 405, graphql: 27 },
  /** The route answers in a form the caller did not ask for (an event stream without `Accept: text/event-stream`). */
  NOT_ACCEPTABLE: { status: 406, graphql: 22 },
  CONFLICT: { status: 409, graphql: 21 },
  ALREADY_EXISTS: { status: 409, graphql: 21 },
  INVALID_STATE: { status: 409, graphql: 27 },
  /** A flow step failed for good (never an HTTP answer; names dead letters and step runs). */
  STEP_FAILED: { status: 422, graphql: 27 },
  PAYLOAD_TOO_LARGE: { status: 413, graphql: 22 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, graphql: 22 },
  RATE_LIMITED: { status: 429, graphql: 27 },
  INTERNAL: { status: 500, graphql: 10 },
  CONFIG_INVALID: { status: 500, graphql: 10 },
  /** Something we called refused (e.g. an OAuth2 token endpoint rejected the credentials). */
  UPSTREAM_FAILED: { status: 502, graphql: 10 },
  /** The operator's outbound network policy refuses the address a call would reach. */
  DESTINATION_REFUSED: { status: 400, graphql: 22 },
  UNAVAILABLE: { status: 503, graphql: 10 },
  TIMEOUT: { status: 504, graphql: 10 },
} as const satisfies Record<string, { status: number; graphql: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly kind: ErrorKind = kindOf(code),
    readonly details?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  get graphqlCode(): number {
    return ERROR_CODES[this.code].graphql;
  }

  static notFound(what: string): AppError {
    return new AppError('NOT_FOUND', `${what} not found`);
  }

  static invalid(message: string, details?: Record<string, unknown>): AppError {
    return new AppError('VALIDATION_FAILED', message, 'user', details);
  }

  static conflict(message: string): AppError {
    return new AppError('INVALID_STATE', message);
  }
}

function kindOf(code: ErrorCode): ErrorKind {
  const status = ERROR_CODES[code].status;
  if (status === 503 || status === 504) return 'transient';
  if (status >= 500) return 'bug';
  return 'user';
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/**
 * SQLSTATEs that mean "PostgreSQL cannot take this value" (class 22, data exception: a NUL byte
 * 22021, `\u0000` in JSON 22P05, malformed input 22P02, too long 22001, out of range 22003…; and
 * 54000/54001, a value too large or nested too deep to process). They come from what a caller
 * sent, so they are a 400, never a 500 — on every route, including the next one written. PGlite
 * raises the same errors with the same `code` field as `pg`.
 */
function isDatabaseInputError(err: unknown): err is { code: string; message: string } {
  if (typeof err !== 'object' || err === null) return false;
  const { code, severity } = err as { code?: unknown; severity?: unknown };
  if (typeof code !== 'string' || typeof severity !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return false;
  return code.startsWith('22') || code === '54000' || code === '54001';
}

/** A database error caused by the caller's input as a 400 AppError; undefined for anything else. */
export function fromDatabaseInputError(err: unknown): AppError | undefined {
  if (!isDatabaseInputError(err)) return undefined;
  return new AppError('VALIDATION_FAILED', `the request holds a value the database cannot store: ${err.message} (SQLSTATE ${err.code})`, 'user', { sqlstate: err.code }, { cause: err });
}

/** Wraps anything thrown into an AppError, keeping AppErrors as they are. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const input = fromDatabaseInputError(err);
  if (input) return input;
  const message = err instanceof Error ? err.message : String(err);
  return new AppError('INTERNAL', message, 'bug', undefined, { cause: err });
}
