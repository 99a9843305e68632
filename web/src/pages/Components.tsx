/** The component catalogue: built-ins and the tenant's own, each function with its fields schema. */
import { useState } from 'react';
import { api, unwrap } from '../api/client';
import { ErrorNote, JsonBlock, PageHeader, Pager, useLoad } from '../ui/common';

export function ComponentsPage() {
  const [search, setSearch] = useState('');
  const [page, setPage] = useState(1);
  const list = useLoad(() => unwrap(api.GET('/api/v1/components', { params: { query: { 'page[number]': page, 'page[size]': 20, ...(search ? { search } : {}) } } })), [page, search]);
  return (
    <>
      <PageHeader title="Components" />
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input type="search" value={search} onChange={(e) => (setPage(1), setSearch(e.target.value))} />
        </label>
      </form>
      <ErrorNote error={list.error} />
      {list.data?.data.map((c) => (
        <section key={c.id} className="card" aria-labelledby={`component-${c.id}`}>
          <h2 id={`component-${c.id}`}>
            {c.title ?? c.name} <span className="muted">{c.id} · {c.builtin ? 'built-in' : `${c.source.kind} ${c.source.name ?? c.source.path ?? ''}`} · v{c.version}</span>
          </h2>
          <p>{c.description}</p>
          {(['actions', 'triggers'] as const).map((kind) =>
            Object.entries(c[kind]).map(([fn, f]) => (
              <details key={`${kind}-${fn}`}>
                <summary>
                  {kind === 'actions' ? 'Action' : 'Trigger'} <strong>{f.title ?? fn}</strong> ({fn}){f.description ? ` — ${f.description}` : ''}
                </summary>
                <h3>Fields schema</h3>
                <JsonBlock value={f.fields} label={`Fields schema of ${c.id} ${fn}`} />
                {f.inputSchema && (
                  <>
                    <h3>Input schema</h3>
                    <JsonBlock value={f.inputSchema} label={`Input schema of ${c.id} ${fn}`} />
                  </>
                )}
                {f.outputSchema && (
                  <>
                    <h3>Output schema</h3>
                    <JsonBlock value={f.outputSchema} label={`Output schema of ${c.id} ${fn}`} />
                  </>
                )}
              </details>
            )),
          )}
          {c.credentials && (
            <details>
              <summary>Credentials schema</summary>
              <JsonBlock value={c.credentials} label={`Credentials schema of ${c.id}`} />
            </details>
          )}
        </section>
      ))}
      <Pager meta={list.data?.meta} onPage={setPage} label="Components" />
    </>
  );
}
