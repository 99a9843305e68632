/** The component catalogue: built-ins and the tenant's own, each function with its fields schema. */
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import { useSession } from '../auth/session';
import { ErrorNote, JsonBlock, PageHeader, Pager, useLoad } from '../ui/common';

/** A component of the tenant's own from a folder under PLEXUS_COMPONENT_PATHS or an npm package installed on the hub. */
function RegisterComponent({ onRegistered }: { onRegistered: () => void }) {
  const [from, setFrom] = useState<'directory' | 'package'>('package');
  const [where, setWhere] = useState('');
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState<string>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setDone(undefined);
    try {
      const r = await unwrap(api.POST('/api/v1/components', { body: from === 'directory' ? { directory: where.trim() } : { package: where.trim() } }));
      setDone(`Registered ${r.data.title ?? r.data.name} (${r.data.id}).`);
      setWhere('');
      onRegistered();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="register-component" onSubmit={(e) => void submit(e)}>
      <h2 id="register-component">Register a component</h2>
      <p className="muted">An OIH / elastic.io component the hub can read: an npm package installed on it, or a folder under PLEXUS_COMPONENT_PATHS. Nothing is downloaded.</p>
      <div className="filters">
        <label>
          From
          <select value={from} onChange={(e) => setFrom(e.target.value as 'directory' | 'package')}>
            <option value="package">an installed npm package</option>
            <option value="directory">a folder on the hub</option>
          </select>
        </label>
        <label>
          {from === 'package' ? 'Package name' : 'Folder'}
          <input value={where} required onChange={(e) => setWhere(e.target.value)} />
        </label>
        <button type="submit" className="primary">
          Register component
        </button>
      </div>
      {done && (
        <p role="status" className="notice">
          {done}
        </p>
      )}
      <ErrorNote error={error} />
    </form>
  );
}

export function ComponentsPage() {
  const session = useSession();
  const canWrite = session.can('components.write');
  const [removeError, setRemoveError] = useState<unknown>();
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
      <ErrorNote error={list.error ?? removeError} />
      {list.data?.data.map((c) => (
        <section key={c.id} className="card" aria-labelledby={`component-${c.id}`}>
          <h2 id={`component-${c.id}`}>
            {c.title ?? c.name} <span className="muted">{c.id} · {c.builtin ? 'built-in' : `${c.source.kind} ${c.source.name ?? c.source.path ?? ''}`} · v{c.version}</span>
          </h2>
          <p>{c.description}</p>
          {canWrite && !c.builtin && (
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (!window.confirm(`Remove component ${c.id}? Running flows keep the code they loaded; flows started later cannot use it.`)) return;
                setRemoveError(undefined);
                unwrap(api.DELETE('/api/v1/components/{id}', { params: { path: { id: c.id } } })).then(list.reload, setRemoveError);
              }}
            >
              Remove<span className="sr-only"> component {c.id}</span>
            </button>
          )}
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
      {canWrite && <RegisterComponent onRegistered={list.reload} />}
    </>
  );
}
