/**
 * Prepared statements for embedded PGlite, with real bind parameters.
 *
 * PGlite runs a parameterised query as two trips through the engine (Parse + Describe to learn
 * the parameter types, then Bind + Execute), and PostgreSQL parses and analyses the text every
 * time. Measured on this project's 10-row execution INSERT (json_to_recordset … ON CONFLICT …
 * RETURNING), 2,000 of each interleaved in one run: 547–583 µs as a query, 357–412 µs as a
 * prepared statement (docs/adr/0007-pglite-prepared-statements.md).
 *
 * So a statement this process has run before is PREPAREd once, on the main connection outside
 * any transaction (a failed PREPARE inside one would abort it), and from then on runs as one
 * Bind (of that statement, parameters in text format) + Describe + Execute + Sync through
 * PGlite's `execProtocol`, parsed by PGlite's own `parseResults`. The parameters never become
 * part of any SQL text: no quoting, so no setting (standard_conforming_strings, client
 * encoding) can turn a value into SQL. Values without one text form (objects, buffers, strings
 * holding NUL) take the ordinary path, as does any statement PREPARE refuses.
 */

/** Statement kinds PREPARE accepts. */
const PREPARABLE = /^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b/i;
/** Distinct statements prepared per database at most; our SQL is static, so this is a backstop. */
const MAX_STATEMENTS = 1_000;

/** A prepared statement and the text-format values of its parameters. */
export interface BoundStatement {
  name: string;
  values: Array<string | null>;
}

export class PreparedStatements {
  /** SQL → statement name; `null` when it cannot be prepared; `pending` while PREPARE runs. */
  private readonly names = new Map<string, string | null | 'pending'>();
  private next = 0;

  /** `prepare` runs a PREPARE statement on the main connection (queued behind any transaction). */
  constructor(private readonly prepare: (sql: string) => Promise<unknown>) {}

  /** The prepared statement to bind these parameters to, or undefined to run the SQL as given. */
  bind(sql: string, params: readonly unknown[]): BoundStatement | undefined {
    const name = this.names.get(sql);
    if (name === undefined) {
      this.schedule(sql);
      return undefined;
    }
    if (name === null || name === 'pending') return undefined;
    const values: Array<string | null> = [];
    for (const p of params) {
      const text = textValue(p);
      if (text === undefined) return undefined;
      values.push(text);
    }
    return { name, values };
  }

  private schedule(sql: string): void {
    if (!PREPARABLE.test(sql)) {
      this.names.set(sql, null);
      return;
    }
    if (this.names.size >= MAX_STATEMENTS) return;
    const name = `plexus_stmt_${++this.next}`;
    this.names.set(sql, 'pending');
    // The statement text is ours (repo files); only the values are the callers', and they are bound.
    this.prepare(`PREPARE ${name} AS ${sql}`).then(
      () => this.names.set(sql, name),
      () => this.names.set(sql, null),
    );
  }
}

/**
 * A parameter in PostgreSQL's text format (what the server's input function of the parameter's
 * type reads), `null` for SQL NULL, or undefined when it has no single text form.
 */
export function textValue(value: unknown): string | null | undefined {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') return value.includes('\0') ? undefined : value;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  if (Array.isArray(value)) return arrayText(value);
  return undefined;
}

/** A one-dimensional array in PostgreSQL's array input syntax: {"a","b\"c",NULL,1}. */
function arrayText(items: readonly unknown[]): string | undefined {
  const parts: string[] = [];
  for (const item of items) {
    if (item === null || item === undefined) parts.push('NULL');
    else if (typeof item === 'number') {
      if (!Number.isFinite(item)) return undefined;
      parts.push(String(item));
    } else if (typeof item === 'string') {
      if (item.includes('\0')) return undefined;
      parts.push(`"${item.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`);
    } else if (typeof item === 'bigint') parts.push(item.toString());
    else if (typeof item === 'boolean') parts.push(item ? 't' : 'f');
    else if (item instanceof Date && !Number.isNaN(item.getTime())) parts.push(`"${item.toISOString()}"`);
    else return undefined;
  }
  return `{${parts.join(',')}}`;
}
