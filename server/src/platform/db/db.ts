/**
 * One `Db` interface over embedded PGlite and a PostgreSQL server. Both speak the same SQL
 * dialect, so repo files are written once. Values come back the same way from both:
 * int8/numeric counts as JS numbers, timestamptz as Date, json/jsonb parsed.
 */
export type Row = Record<string, unknown>;

export interface QueryResult<R> {
  rows: R[];
  rowCount: number;
}

export interface Queryable {
  /** One parameterised statement. */
  query<R = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** A script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export type Dialect = 'pglite' | 'postgres';

export interface Db extends Queryable {
  readonly dialect: Dialect;
  /**
   * True when no other process can have this database open (embedded PGlite under the
   * data-directory lock): anything a process left leased in it belongs to a process that is
   * gone, and is released at start (platform/bus).
   */
  readonly exclusive?: boolean;
  /** Runs `fn` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  /** Throws when the database does not answer. */
  ping(): Promise<void>;
  /** LISTEN on a channel; resolves to a function that stops listening. */
  listen(channel: string, onNotify: (payload: string) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}
