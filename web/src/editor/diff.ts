/** The lines that changed between two versions of a flow's definition (what a user edits). */
import { diffLines } from 'diff';

export interface DiffLine {
  kind: 'added' | 'removed' | 'same';
  text: string;
}

/** The parts of a version a user changes; server bookkeeping (who, when, `current`) left out. */
export function definitionOf(v: { name: string; description?: string | undefined; cron?: string | undefined; timezone?: string | undefined; graph: unknown; flowSettings: Record<string, unknown> }): unknown {
  // Canvas positions are where boxes sit, not what the flow does.
  const { cockpit: _layout, ...settings } = v.flowSettings;
  return { name: v.name, description: v.description ?? null, cron: v.cron ?? null, timezone: v.timezone ?? null, graph: v.graph, flowSettings: settings };
}

export function diffDefinitions(older: unknown, newer: unknown): DiffLine[] {
  const out: DiffLine[] = [];
  for (const part of diffLines(JSON.stringify(older, null, 2), JSON.stringify(newer, null, 2))) {
    const kind = part.added ? 'added' : part.removed ? 'removed' : 'same';
    for (const text of part.value.replace(/\n$/, '').split('\n')) out.push({ kind, text });
  }
  return out;
}
