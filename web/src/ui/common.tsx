/** Small shared pieces of the cockpit's pages. */
import { useCallback, useEffect, useRef, useState, type ReactNode } from 'react';
import { ApiError } from '../api/client';

/** Runs `load` now and whenever `deps` change; `reload` runs it again (after an event, a change). */
export function useLoad<T>(load: () => Promise<T>, deps: readonly unknown[]): { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => void } {
  const [state, setState] = useState<{ data: T | undefined; error: Error | undefined; loading: boolean }>({ data: undefined, error: undefined, loading: true });
  const seq = useRef(0);
  const run = useCallback(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, error: undefined, loading: false }),
      (error: Error) => mine === seq.current && setState((s) => ({ data: s.data, error, loading: false })),
    );
  }, deps);
  useEffect(run, [run]);
  return { ...state, reload: run };
}

/** The name an error is shown under: the hub's code, or what went wrong on the way to it. */
export function errorName(e: Error): string {
  if (e instanceof ApiError) return e.code;
  // fetch rejects with a TypeError when no answer came (hub down, network gone).
  if (e instanceof TypeError && /fetch|network/i.test(e.message)) return 'HUB_UNREACHABLE';
  return '';
}

export function ErrorNote({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error as Error;
  const problems = e instanceof ApiError ? (e.details?.problems ?? []) : [];
  const name = errorName(e);
  return (
    <div role="alert" className="error">
      <strong>{name ? `${name}: ` : ''}</strong>
      {problems.length > 0 ? 'The hub found these problems:' : e.message}
      {problems.length > 0 && (
        <ul>
          {problems.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status}</span>;
}

export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

export interface PageMeta {
  total: number;
  page: number;
  perPage: number;
  totalPages: number;
}

export function Pager({ meta, onPage, label }: { meta: PageMeta | undefined; onPage: (page: number) => void; label: string }) {
  if (!meta || meta.totalPages <= 1) return meta ? <p className="muted">{meta.total} in all</p> : null;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={meta.page <= 1} onClick={() => onPage(meta.page - 1)}>
        Previous
      </button>
      <span aria-live="polite">
        Page {meta.page} of {meta.totalPages} ({meta.total} in all)
      </span>
      <button type="button" disabled={meta.page >= meta.totalPages} onClick={() => onPage(meta.page + 1)}>
        Next
      </button>
    </nav>
  );
}

/**
 * Copies `text`; "Copied" is said beside the button (a status), not as its text, so the button's
 * name (`label`) keeps containing what it shows (axe: label-content-name-mismatch).
 */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [copied, setCopied] = useState(false);
  return (
    <>
      <button
        type="button"
        onClick={() => {
          void navigator.clipboard?.writeText(text).then(
            () => setCopied(true),
            () => setCopied(false),
          );
        }}
        aria-label={label}
      >
        Copy
      </button>
      {copied && (
        <span role="status" className="muted">
          {' '}
          Copied
        </span>
      )}
    </>
  );
}

/** Pretty JSON in a scrollable, focusable block (keyboard users can scroll it). */
export function JsonBlock({ value, label }: { value: unknown; label: string }) {
  return (
    <pre className="json" tabIndex={0} aria-label={label}>
      {value === undefined ? '—' : JSON.stringify(value, null, 2)}
    </pre>
  );
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <header className="page-header">
      <h1>{title}</h1>
      <div className="actions">{children}</div>
    </header>
  );
}
