/**
 * How commands print: a table for people by default, `-o json` / `-o yaml` for scripts (the
 * API's `data`, whole, item or array). Tables go to stdout without borders or colours, so they
 * stay greppable; notes about paging and progress go to stderr, so stdout is only the answer.
 */
import Table from 'cli-table3';
import YAML from 'yaml';
import type { ListMeta } from '../contracts/list.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface Column<T> {
  header: string;
  value: (row: T) => unknown;
}

export interface Out {
  format: OutputFormat;
  stdout(text: string): void;
  stderr(text: string): void;
}

export function processOut(format: OutputFormat): Out {
  return {
    format,
    stdout: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    stderr: (text) => void process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  };
}

/** A list: rows as a table, or the data as JSON / YAML. */
export function printList<T>(out: Out, rows: readonly T[], columns: ReadonlyArray<Column<T>>, meta?: ListMeta, noun = 'items'): void {
  if (out.format !== 'table') return printData(out, rows);
  if (rows.length === 0) {
    out.stderr(meta && meta.total > 0 ? `no ${noun} on page ${meta.page} (${meta.total} in all)` : `no ${noun}`);
    return;
  }
  out.stdout(renderTable(columns.map((c) => c.header), rows.map((r) => columns.map((c) => cell(c.value(r))))));
  if (meta && meta.totalPages > 1) {
    out.stderr(`page ${meta.page} of ${meta.totalPages} (${meta.total} ${noun})${meta.page < meta.totalPages ? `; --page ${meta.page + 1} for the next, --all for every page` : ''}`);
  }
}

/** One item: label / value lines, or the data as JSON / YAML. */
export function printItem<T>(out: Out, item: T, fields: ReadonlyArray<Column<T>>): void {
  if (out.format !== 'table') return printData(out, item);
  out.stdout(renderTable(undefined, fields.map((f) => [`${f.header}:`, cell(f.value(item))])));
}

export function printData(out: Out, data: unknown): void {
  out.stdout(out.format === 'yaml' ? YAML.stringify(data) : JSON.stringify(data, null, 2));
}

const PLAIN = {
  top: '', 'top-mid': '', 'top-left': '', 'top-right': '',
  bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '',
  left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '',
};

export function renderTable(head: string[] | undefined, rows: string[][]): string {
  const table = new Table({ ...(head ? { head } : {}), chars: PLAIN, style: { head: [], border: [], 'padding-left': 0, 'padding-right': 2 } });
  table.push(...rows);
  // cli-table3 pads every line to the column width; trailing blanks only get in a reader's way.
  return table
    .toString()
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n');
}

/** A value as one table cell: dates shortened, objects as compact JSON, nothing as `-`. */
export function cell(v: unknown): string {
  if (v === undefined || v === null || v === '') return '-';
  if (typeof v === 'string') return /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) ? v.replace(/\.\d+Z$/, 'Z') : v;
  if (Array.isArray(v)) return v.length === 0 ? '-' : v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
