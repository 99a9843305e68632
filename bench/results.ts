/**
 * Records a benchmark's figures in bench/RESULTS.md: one dated section per benchmark, with the
 * machine it ran on. Running a benchmark again replaces its section and leaves the others.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const RESULTS_PATH = path.join(path.dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');

export interface ResultTable {
  /** Shown above the table when a section has several. */
  title?: string;
  columns: string[];
  rows: (string | number)[][];
}

export interface BenchResults {
  tables: ResultTable[];
  /** Free text under the tables: settings, caveats, goals. */
  notes?: string[];
}

const HEADER = `# Benchmark results

Written by \`npm run bench -- <name>\` (see bench/run.ts). Each benchmark owns one section below;
running it again replaces that section with the new figures and the machine they came from.
`;

/**
 * Other work on the box skews every figure: record how busy it was when the run started. A
 * benchmark imports this module before it runs, so module load time is the start of the run.
 */
const loadAtStart = os.loadavg()[0] ?? 0;

export function machineSummary(): string {
  const cpus = os.cpus();
  const model = cpus[0]?.model.trim() ?? 'unknown CPU';
  const memGiB = (os.totalmem() / 1024 ** 3).toFixed(1);
  const load = loadAtStart.toFixed(2);
  return `${model}, ${cpus.length} cores, ${memGiB} GiB RAM, Node ${process.version}, ${os.platform()} ${os.arch()}; load average ${load} at start`;
}

/** Markdown of one table; numbers are shown with thousands separators. */
export function markdownTable(t: ResultTable): string {
  const cell = (v: string | number): string => (typeof v === 'number' ? formatNumber(v) : v.replace(/\|/g, '\\|'));
  const lines = [`| ${t.columns.join(' | ')} |`, `|${t.columns.map(() => '---').join('|')}|`, ...t.rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];
  return (t.title ? `**${t.title}**\n\n` : '') + lines.join('\n');
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const digits = Math.abs(v) >= 100 || Number.isInteger(v) ? 0 : Math.abs(v) >= 10 ? 1 : 2;
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Writes (or replaces) the section of benchmark `name` in RESULTS.md. */
export function recordResults(name: string, results: BenchResults, file = RESULTS_PATH): void {
  // `--no-record` on any bench's command line: a trial run that must not replace the recorded figures.
  if (process.argv.includes('--no-record')) {
    process.stdout.write(`${name}: not recorded (--no-record)\n`);
    return;
  }
  const begin = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const date = new Date().toISOString().slice(0, 10);
  const body = [
    begin,
    `## ${name} — ${date}`,
    '',
    `Machine: ${machineSummary()}`,
    '',
    ...results.tables.flatMap((t) => [markdownTable(t), '']),
    ...(results.notes?.length ? [...results.notes.map((n) => `- ${n}`), ''] : []),
    end,
  ].join('\n');
  const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : HEADER;
  const from = current.indexOf(begin);
  const to = current.indexOf(end);
  const next = from >= 0 && to > from ? current.slice(0, from) + body + current.slice(to + end.length) : `${current.trimEnd()}\n\n${body}\n`;
  fs.writeFileSync(file, next);
}
