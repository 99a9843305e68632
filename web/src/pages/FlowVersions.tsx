/** Every version of a flow's definition, and what changed between two of them. */
import { useMemo, useState } from 'react';
import { api, unwrap } from '../api/client';
import { definitionOf, diffDefinitions } from '../editor/diff';
import { ErrorNote, formatTime, useLoad } from '../ui/common';

export function Versions({ flowId, version }: { flowId: string; version: number }) {
  const list = useLoad(() => unwrap(api.GET('/api/v1/flows/{id}/versions', { params: { path: { id: flowId }, query: { 'page[size]': 100 } } })).then((r) => r.data), [flowId, version]);
  const versions = list.data ?? [];
  const [older, setOlder] = useState<number | undefined>();
  const [newer, setNewer] = useState<number | undefined>();
  const a = versions.find((v) => v.version === (older ?? version - 1));
  const b = versions.find((v) => v.version === (newer ?? version));
  const lines = useMemo(() => (a && b ? diffDefinitions(definitionOf(a), definitionOf(b)) : []), [a, b]);

  return (
    <section aria-labelledby="versions-title" className="card">
      <h2 id="versions-title">Versions</h2>
      <ErrorNote error={list.error} />
      {versions.length < 2 ? (
        <p className="muted">Version {version} is the only one so far.</p>
      ) : (
        <>
          <div className="filters">
            <label>
              Compare
              <select value={a?.version ?? ''} onChange={(e) => setOlder(Number(e.target.value))}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version} · {formatTime(v.createdAt)}
                  </option>
                ))}
              </select>
            </label>
            <label>
              with
              <select value={b?.version ?? ''} onChange={(e) => setNewer(Number(e.target.value))}>
                {versions.map((v) => (
                  <option key={v.version} value={v.version}>
                    v{v.version}
                    {v.current ? ' (current)' : ''}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <pre className="diff" tabIndex={0} aria-label={`Changes from version ${a?.version} to version ${b?.version}`}>
            {lines.map((l, i) => (
              <div key={i} className={`diff-${l.kind}`}>
                <span aria-hidden="true">{l.kind === 'added' ? '+ ' : l.kind === 'removed' ? '- ' : '  '}</span>
                {l.kind !== 'same' && <span className="sr-only">{l.kind}: </span>}
                {l.text}
              </div>
            ))}
          </pre>
        </>
      )}
    </section>
  );
}
