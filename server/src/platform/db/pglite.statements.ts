/**
 * Prepared statements for embedded PGlite.
 *
 * PGlite runs a parameterised query as two trips through the engine (Parse + Describe to learn
 * the parameter types, then Bind + Execute), and PostgreSQL parses and analyses the text every
 * time. Measured on this project's 10-row execution INSERT (json_to_recordset … ON CONFLICT …
 * RETURNING), 2,000 of each interleaved in one run: 547–583 µs as a query, 357–412 µs as
 * `EXECUTE` of a prepared statement over the simple protocol.
 *
 * So a statement this process has run before is PREPAREd once, on the main connection outside
 * any transaction (a failed PREPARE inside one would abort it), and from then on runs as
 * `EXECUTE name('…', …)`. Parameters travel as quoted text literals, which the server turns into
 * the parameter types with their input functions, exactly as it does with the text-format
 * parameters of the extended protocol. Values without an unambiguous text form (objects,
 * buffers, strings holding NUL) take the ordinary path, as does any statement PREPARE refuses.
 */

/** Statement kinds PREPARE accepts. */
const PREPARABLE = /^\s*(SELECT|INSERT|UPDATE|DELETE|WITH|VALUES)\b/i;
/** Distinct statements prepared per database at most; our SQL is static, so this is a backstop. */
const MAX_STATEMENTS = 1_000;

export class PreparedStatements {
  /** SQL → statement name; `null` when it cannot be prepared; `pending` while PREPARE runs. */
  private readonly names = new Map<string, string | null | 'pending'>();
  private next = 0;

  /** `prepare` runs a PREPARE statement on the main connection (queued behind any transaction). */
  constructor(private readonly prepare: (sql: string) => Promise<unknown>) {}

  /** The `EXECUTE …` text for this statement with these parameters, or undefined to run it as given. */
  executeSql(sql: string, params: readonly unknown[]): string | undefined {
    const name = this.names.get(sql);
    if (name === undefined) {
      this.schedule(sql);
      return undefined;
    }
    if (name === null || name === 'pending') return undefined;
    const literals: string[] = [];
    for (const p of params) {
      const lit = literal(p);
      if (lit === undefined) return undefined;
      literals.push(lit);
    }
    return literals.length === 0 ? `EXECUTE ${name}` : `EXECUTE ${name}(${literals.join(', ')})`;
  }

  private schedule(sql: string): void {
    if (!PREPARABLE.test(sql)) {
      this.names.set(sql, null);
      return;
    }
    if (this.names.size >= MAX_STATEMENTS) return;
    const name = `plexus_stmt_${++this.next}`;
    this.names.set(sql, 'pending');
    this.prepare(`PREPARE ${name} AS ${sql}`).then(
      () => this.names.set(sql, name),
      () => this.names.set(sql, null),
    );
  }
}

/** A parameter as an SQL literal of unknown type, or undefined when it has no safe text form. */
export function literal(value: unknown): string | undefined {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return quote(value);
  if (typeof value === 'number') return Number.isFinite(value) ? quote(String(value)) : undefined;
  if (typeof value === 'bigint') return quote(value.toString());
  if (typeof value === 'boolean') return value ? "'t'" : "'f'";
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : quote(value.toISOString());
  if (Array.isArray(value)) {
    const text = arrayText(value);
    return text === undefined ? undefined : quote(text);
  }
  return undefined;
}

/**
 * A string literal. The server runs with standard_conforming_strings on (checked when the
 * database opens), so a backslash is an ordinary character and only quotes are doubled. NUL
 * cannot be in a PostgreSQL string, and would end the statement text early.
 */
function quote(s: string): string | undefined {
  if (s.includes('\0')) return undefined;
  return `'${s.replaceAll("'", "''")}'`;
}

/** A one-dimensional array in PostgreSQL's array input syntax: {"a","b\"c",NULL,1}. */
function arrayText(items: readonly unknown[]): string | undefined {
  const parts: string[] = [];
  for (const item of items) {
    if (item === null || item === undefined) parts.push('NULL');
    else if (typeof item === 'number') {
      if (!Number.isFinite(item)) return undefined;
      parts.push(String(item));
    } else if (typeof item === 'string') parts.push(`"${item.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`);
    else if (typeof item === 'bigint') parts.push(item.toString());
    else if (typeof item === 'boolean') parts.push(item ? 't' : 'f');
    else if (item instanceof Date && !Number.isNaN(item.getTime())) parts.push(`"${item.toISOString()}"`);
    else return undefined;
  }
  return `{${parts.join(',')}}`;
}
