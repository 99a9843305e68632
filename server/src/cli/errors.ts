/**
 * What goes wrong in the CLI and the exit code a script sees for it. The hub's errors arrive as
 * `ApiError` (its stable `code`, the HTTP status, the problems it listed); everything the CLI
 * finds itself (a bad file, no session) is a `CliError`. `EXIT_BY_STATUS` is the one table from
 * an answer's status to an exit code.
 */

export const EXIT = {
  ok: 0,
  /** Anything else that failed: refused input, the hub unreachable, a failed execution. */
  error: 1,
  /** The command line itself is wrong (unknown command or option, missing argument). */
  usage: 2,
  notFound: 3,
  conflict: 4,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const EXIT_BY_STATUS: Readonly<Record<number, ExitCode>> = {
  404: EXIT.notFound,
  409: EXIT.conflict,
};

/**
 * GraphQL answers (the Director) carry Compass's `extensions.error_code` instead of a status:
 * each is read as the HTTP status the REST API gives the same refusal, so both reach one exit code.
 */
export const STATUS_BY_GRAPHQL_CODE: Readonly<Record<number, number>> = {
  10: 500,
  20: 404,
  21: 409,
  22: 400,
  23: 403,
  24: 400,
  25: 404,
  26: 401,
  27: 409,
};

export class CliError extends Error {
  override readonly name: string = 'CliError';
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.error,
    /** One line each, printed under the message (e.g. every problem of a flow file). */
    readonly problems: readonly string[] = [],
  ) {
    super(message);
  }
}

/** An error answer of the hub: `{errors:[{code, message, details}]}` with its status. */
export class ApiError extends CliError {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    problems: readonly string[] = [],
    readonly retryAfterSeconds?: number,
  ) {
    super(message, EXIT_BY_STATUS[status] ?? EXIT.error, problems);
  }

  get isUnauthenticated(): boolean {
    return this.status === 401;
  }
}

export function isCliError(err: unknown): err is CliError {
  return err instanceof CliError;
}
