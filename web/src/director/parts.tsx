/** Pieces the Director's screens share: labels, scenarios, filters, cursor pages, specs. */
import { Markdown } from 'markdown-to-jsx/react';
import { useEffect, useRef, useState, type FormEvent } from 'react';
import { parseLabelFilter, parseLabelValue, type IssuedAuth, type LabelFilter, type Labels, type OneTimeToken, type OneTimeTokenStatus, type PageInfo, type Spec } from '../api/director';
import { CopyButton, ErrorNote, formatTime } from '../ui/common';
import { isLive, timeLeft, tokenState } from './pairing';
import { summarizeSpec } from './spec';

export function ConditionBadge({ condition }: { condition: string }) {
  return <span className={`badge badge-${condition.toLowerCase()}`}>{condition}</span>;
}

function show(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** Labels as `key: value` chips (lists joined), for tables. */
export function LabelChips({ labels, skip = [] }: { labels: Labels | null; skip?: string[] }) {
  const entries = Object.entries(labels ?? {}).filter(([k]) => !skip.includes(k));
  if (entries.length === 0) return <span className="muted">—</span>;
  return (
    <ul className="chips">
      {entries.map(([k, v]) => (
        <li key={k}>
          <code>
            {k}: {Array.isArray(v) ? v.map(show).join(', ') : show(v)}
          </code>
        </li>
      ))}
    </ul>
  );
}

/**
 * The filter of a list: a scenario (the usual question: what is in scenario X) and any label,
 * `key` (has it) or `key=value` (is or contains it). Both apply together.
 */
export function LabelFilterForm({ scenarios, onFilter, what }: { scenarios: string[]; onFilter: (f: LabelFilter[]) => void; what: string }) {
  const [scenario, setScenario] = useState('');
  const [label, setLabel] = useState('');
  const apply = (nextScenario: string, nextLabel: string): void => {
    const filters: LabelFilter[] = [];
    if (nextScenario) filters.push({ key: 'scenarios', query: `$[*] ? (@ == ${JSON.stringify(nextScenario)})` });
    const parsed = parseLabelFilter(nextLabel);
    if (parsed) filters.push(parsed);
    onFilter(filters);
  };
  return (
    <form
      className="filters"
      role="search"
      aria-label={`Filter ${what}`}
      onSubmit={(e) => {
        e.preventDefault();
        apply(scenario, label);
      }}
    >
      <label>
        Scenario
        <select value={scenario} onChange={(e) => (setScenario(e.target.value), apply(e.target.value, label))}>
          <option value="">any</option>
          {scenarios.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </label>
      <label>
        Label filter
        <input value={label} onChange={(e) => setLabel(e.target.value)} placeholder="key or key=value" aria-describedby="label-filter-help" />
      </label>
      <button type="submit">Filter</button>
      <p id="label-filter-help" className="muted">
        <code>env</code> has the label; <code>env=prod</code> or <code>{'tier=["gold"]'}</code> has that value (JSON, or plain text).
      </p>
    </form>
  );
}

/** Cursor pages (the Director pages by `after`): the cursors seen so far allow going back. */
export function useCursorPages(): { after: string; page: number; next: (info: PageInfo) => void; previous: () => void; reset: () => void } {
  const [cursors, setCursors] = useState<string[]>(['']);
  return {
    after: cursors[cursors.length - 1]!,
    page: cursors.length,
    next: (info) => setCursors((c) => [...c, info.endCursor]),
    previous: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    reset: () => setCursors(['']),
  };
}

export function CursorPager({ label, page, total, info, onNext, onPrevious }: { label: string; page: number; total: number | undefined; info: PageInfo | undefined; onNext: () => void; onPrevious: () => void }) {
  if (total === undefined) return null;
  if (page === 1 && !info?.hasNextPage) return <p className="muted">{total} in all</p>;
  return (
    <nav className="pager" aria-label={`${label} pages`}>
      <button type="button" disabled={page <= 1} onClick={onPrevious}>
        Previous
      </button>
      <span aria-live="polite">
        Page {page} ({total} in all)
      </span>
      <button type="button" disabled={!info?.hasNextPage} onClick={onNext}>
        Next
      </button>
    </nav>
  );
}

/** An object's labels with set and delete; `scenarios` has its own editor. */
export function LabelsEditor({ labels, canWrite, onSet, onDelete, readOnlyKeys = [] }: { labels: Labels | null; canWrite: boolean; onSet: (key: string, value: unknown) => Promise<void>; onDelete: (key: string) => Promise<void>; readOnlyKeys?: string[] }) {
  const [key, setKey] = useState('');
  const [value, setValue] = useState('');
  const [error, setError] = useState<unknown>();
  const run = async (action: () => Promise<void>): Promise<boolean> => {
    setError(undefined);
    try {
      await action();
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (await run(() => onSet(key.trim(), parseLabelValue(value)))) {
      setKey('');
      setValue('');
    }
  };
  const entries = Object.entries(labels ?? {}).filter(([k]) => k !== 'scenarios');
  return (
    <section aria-labelledby="labels-heading">
      <h2 id="labels-heading">Labels</h2>
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Labels table">
        <table>
          <caption className="sr-only">Labels</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col">Value</th>
              {canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {entries.map(([k, v]) => (
              <tr key={k}>
                <td>{k}</td>
                <td>
                  <code>{JSON.stringify(v)}</code>
                </td>
                {canWrite && (
                  <td>
                    {!readOnlyKeys.includes(k) && (
                      <button type="button" className="danger" aria-label={`Delete label ${k}`} onClick={() => void run(() => onDelete(k))}>
                        Delete
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
            {entries.length === 0 && (
              <tr>
                <td colSpan={3}>No labels besides scenarios.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {canWrite && (
        <form className="filters" aria-label="Set a label" onSubmit={(e) => void submit(e)}>
          <label>
            Label key
            <input value={key} required onChange={(e) => setKey(e.target.value)} />
          </label>
          <label>
            Label value
            <input value={value} onChange={(e) => setValue(e.target.value)} placeholder='text, or JSON: 5, ["a","b"], {"x":1}' />
          </label>
          <button type="submit">Set label</button>
        </form>
      )}
      <ErrorNote error={error} />
    </section>
  );
}

/** The scenarios an object is in, chosen from the tenant's scenarios. */
export function ScenariosEditor({ current, available, canWrite, onSave }: { current: string[]; available: string[]; canWrite: boolean; onSave: (scenarios: string[]) => Promise<void> }) {
  const [chosen, setChosen] = useState<string[]>(current);
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  // The object was read again (after this save or another change): show what it holds now.
  const now = current.join('\n');
  useEffect(() => setChosen(now ? now.split('\n') : []), [now]);
  const all = [...new Set([...available, ...current])];
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    try {
      await onSave(chosen);
      setSaved(true);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="scenarios-heading">
      <h2 id="scenarios-heading">Scenarios</h2>
      <p className="muted">Applications and runtimes that share a scenario see each other.</p>
      <form onSubmit={(e) => void submit(e)} aria-label="Scenarios">
        <fieldset className="permissions" disabled={!canWrite}>
          <legend>In scenarios</legend>
          {all.map((s) => (
            <label key={s} className="inline">
              <input type="checkbox" checked={chosen.includes(s)} onChange={(e) => setChosen((c) => (e.target.checked ? [...c, s] : c.filter((x) => x !== s)))} />
              {s}
            </label>
          ))}
        </fieldset>
        {canWrite && <button type="submit">Save scenarios</button>}
        {saved && (
          <span role="status" className="muted">
            {' '}
            Scenarios saved.
          </span>
        )}
      </form>
      <ErrorNote error={error} />
    </section>
  );
}

/** A fetch request's state: where from, and how the last attempt went. */
export function FetchState({ fetchRequest }: { fetchRequest: Spec['fetchRequest'] }) {
  if (!fetchRequest) return null;
  return (
    <p>
      Fetched from <code>{fetchRequest.url}</code>: <ConditionBadge condition={fetchRequest.status.condition} /> {formatTime(fetchRequest.status.timestamp)}
      {fetchRequest.status.message && <span className="error"> — {fetchRequest.status.message}</span>}
    </p>
  );
}

/** A spec rendered: what the parser said, its operations / channels / entity sets, the raw document. */
export function SpecView({ spec, label }: { spec: Spec; label: string }) {
  const summary = spec.data ? summarizeSpec(spec.type, spec.format, spec.data) : undefined;
  const isEvent = spec.type === 'ASYNC_API';
  return (
    <div className="spec">
      <p className="muted">
        {spec.type} · {spec.format}
        {summary?.title && <> · {summary.title}</>}
      </p>
      <FetchState fetchRequest={spec.fetchRequest} />
      {spec.validation && !spec.validation.valid && (
        <div role="alert" className="error">
          <strong>The spec's parser found problems:</strong>
          <ul>
            {spec.validation.problems.map((p, i) => (
              <li key={i}>
                {p.path && <code>{p.path}</code>} {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      {spec.validation?.valid && <p className="ok">The spec's parser accepted it.</p>}
      {summary?.problem && <p className="error">{summary.problem}</p>}
      {summary && summary.operations.length > 0 && (
        <div className="table-wrap" tabIndex={0} role="region" aria-label={`${label} table`}>
          <table>
            <caption className="sr-only">{label}</caption>
            <thead>
              <tr>
                <th scope="col">{spec.type === 'ODATA' ? 'Kind' : isEvent ? 'Action' : 'Method'}</th>
                <th scope="col">{spec.type === 'ODATA' ? 'Name' : isEvent ? 'Channel' : 'Path'}</th>
                <th scope="col">Summary</th>
              </tr>
            </thead>
            <tbody>
              {summary.operations.map((o, i) => (
                <tr key={i}>
                  <td>
                    <span className={`method method-${o.method.toLowerCase()}`}>{o.method}</span>
                  </td>
                  <td>
                    <code>{o.path}</code>
                  </td>
                  <td>{o.summary}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {spec.data && (
        <details>
          <summary>The document</summary>
          <pre className="json" tabIndex={0} aria-label={`${label}: the document`}>
            {spec.data}
          </pre>
        </details>
      )}
    </div>
  );
}

/** A document's headings sit below the page's (h1) and the document's title (h3). */
const HEADING_LEVELS = { h1: 'h4', h2: 'h5', h3: 'h6', h4: 'h6', h5: 'h6', h6: 'h6' } as const;
const MARKDOWN_OPTIONS = {
  disableParsingRawHTML: true,
  overrides: Object.fromEntries(Object.entries(HEADING_LEVELS).map(([from, to]) => [from, { component: to }])),
};

/** A markdown document rendered; raw HTML in it is shown as text, never parsed. */
export function MarkdownView({ source }: { source: string }) {
  return (
    <div className="markdown">
      <Markdown options={MARKDOWN_OPTIONS}>{source}</Markdown>
    </div>
  );
}

/**
 * Credentials standing for an application or runtime (its agent's bearer token): issue one —
 * shown once, with a copy button — and revoke. Pairing with a one-time token is the Connector's.
 */
export function SystemAuths({ what, auths, canWrite, onIssue, onRevoke }: { what: string; auths: Array<{ id: string }> | null; canWrite: boolean; onIssue: () => Promise<IssuedAuth>; onRevoke: (id: string) => Promise<void> }) {
  const [issued, setIssued] = useState<string>();
  const [error, setError] = useState<unknown>();
  const run = async (action: () => Promise<void>): Promise<void> => {
    setError(undefined);
    try {
      await action();
    } catch (err) {
      setError(err);
    }
  };
  const list = auths ?? [];
  return (
    <section aria-labelledby="credentials-heading">
      <h2 id="credentials-heading">Credentials</h2>
      <p className="muted">Bearer tokens standing for the {what}: it acts in the Director as itself with one.</p>
      {list.length === 0 ? (
        <p>None issued.</p>
      ) : (
        <ul>
          {list.map((a) => (
            <li key={a.id}>
              <code>{a.id}</code>{' '}
              {canWrite && (
                <button type="button" className="danger small" onClick={() => window.confirm(`Revoke credential ${a.id}? The ${what} can no longer act with it.`) && void run(() => onRevoke(a.id))}>
                  Revoke<span className="sr-only"> credential {a.id}</span>
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {issued && (
        <div className="notice" role="status">
          <p>A new credential; its token is shown this once:</p>
          <p>
            <code aria-label="Credential token">{issued}</code> <CopyButton text={issued} label="Copy the credential token" />
          </p>
        </div>
      )}
      {canWrite && (
        <button
          type="button"
          onClick={() =>
            void run(async () => {
              setIssued(undefined);
              const auth = await onIssue();
              setIssued(auth.auth?.credential.token ?? '');
            })
          }
        >
          Issue a credential
        </button>
      )}
      <ErrorNote error={error} />
    </section>
  );
}

/** The browser's clock, once a second while `running` (the countdown; nothing is asked of the hub). */
function useNow(running: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!running) return undefined;
    setNow(Date.now());
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [running]);
  return now;
}

const TOKEN_STATE_TEXT = {
  used: 'used',
  replaced: 'replaced by a newer token before it was used',
  expired: 'expired without being used',
  waiting: 'not used yet',
} as const;

/**
 * Pairing with the Connector: a one-time token the application's or runtime's agent redeems
 * (`Connector-Token` header at the connector URL) for a client certificate. The token is shown
 * once, with its connector URL, copy buttons and a countdown to its expiry; whether it was used
 * is the Director's `oneTimeToken` status, read again on demand. Requesting another token stops
 * any earlier unused one, which the panel says before and after.
 */
export function Pairing({ what, status, canWrite, onRequest, onCheck }: { what: 'application' | 'runtime'; status: OneTimeTokenStatus | null; canWrite: boolean; onRequest: () => Promise<OneTimeToken>; onCheck: () => void }) {
  const [issued, setIssued] = useState<OneTimeToken & { replaced: string | null }>();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const now = useNow(!!issued || isLive(status, Date.now()));
  // A new token: move focus to it, so keyboard and screen-reader users land on what to copy.
  const issuedRef = useRef<HTMLDivElement>(null);
  useEffect(() => issuedRef.current?.focus(), [issued?.token]);
  const request = async (): Promise<void> => {
    setError(undefined);
    setBusy(true);
    // A token that still worked is replaced: say so next to the new one.
    const replaced = isLive(status, Date.now()) ? status!.createdAt : null;
    try {
      const token = await onRequest();
      setIssued({ ...token, replaced });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  // The status read after the request is the issued token's (the newest); before that, the answer's.
  const current = issued && status && Date.parse(status.expiresAt) === Date.parse(issued.expiresAt) ? status : undefined;
  const used = current?.used ?? issued?.used ?? false;
  const left = issued ? timeLeft(issued.expiresAt, now) : '';
  return (
    <section aria-labelledby="pairing-heading">
      <h2 id="pairing-heading">Pairing</h2>
      <p className="muted">
        The {what}'s agent redeems a one-time token at the Connector for its client certificate. Requesting a new token makes any earlier unused one stop working.
      </p>
      {status && (
        <p aria-label="Latest token">
          Latest token requested {formatTime(status.createdAt)}, valid until {formatTime(status.expiresAt)}: <strong>{TOKEN_STATE_TEXT[tokenState(status, now)]}</strong>
          {status.usedAt && <> ({formatTime(status.usedAt)})</>}.
        </p>
      )}
      {!status && !issued && <p>No token requested yet.</p>}
      {issued && (
        <div className="notice" role="region" aria-label="New one-time token" tabIndex={-1} ref={issuedRef}>
          {issued.replaced && (
            <p>
              <strong>It replaces the token requested {formatTime(issued.replaced)}</strong>, which no longer works.
            </p>
          )}
          <p>The token is shown this once:</p>
          <p className="wrap">
            <code aria-label="One-time token">{issued.token}</code> <CopyButton text={issued.token} label="Copy the one-time token" />
          </p>
          <dl className="facts">
            <dt>Connector URL</dt>
            <dd className="wrap">
              <code aria-label="Connector URL">{issued.connectorURL}</code> <CopyButton text={issued.connectorURL} label="Copy the connector URL" />
            </dd>
            <dt>Expires</dt>
            <dd>
              {formatTime(issued.expiresAt)} —{' '}
              <span aria-label="Time left" className={left === 'expired' ? 'error' : undefined}>
                {left === 'expired' ? 'expired' : `in ${left}`}
              </span>
            </dd>
            <dt>Used</dt>
            <dd aria-label="Token used">{used ? `yes${current?.usedAt ? `, ${formatTime(current.usedAt)}` : ''}` : 'not yet'}</dd>
          </dl>
        </div>
      )}
      <div className="button-row">
        {canWrite && (
          <button type="button" className="primary" disabled={busy} onClick={() => void request()}>
            Pair
          </button>
        )}
        {(status || issued) && (
          <button type="button" onClick={onCheck}>
            Check whether it was used
          </button>
        )}
      </div>
      <ErrorNote error={error} />
    </section>
  );
}
