/** The audit log, newest first, with the API's filters: event, module, result, user, time, text. */
import { useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { ErrorNote, formatTime, JsonBlock, PageHeader, Pager, useLoad } from '../ui/common';

const FILTERS = ['name', 'module', 'result', 'user', 'from', 'to', 'search'] as const;
type Filter = (typeof FILTERS)[number];

function toInstant(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function AuditPage() {
  const [params, setParams] = useSearchParams();
  const f = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? ''])) as Record<Filter, string>;
  const page = Number(params.get('page') ?? '1') || 1;
  const set = (k: Filter | 'page', v: string): void => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k !== 'page') next.delete('page');
    setParams(next, { replace: true });
  };
  const list = useLoad(() => {
    const from = toInstant(f.from);
    const to = toInstant(f.to);
    return unwrap(
      api.GET('/api/v1/audit', {
        params: {
          query: {
            'page[number]': page,
            'page[size]': 25,
            ...(f.name ? { 'filter[name]': f.name } : {}),
            ...(f.module ? { 'filter[module]': f.module } : {}),
            ...(f.result ? { 'filter[result]': f.result as 'success' | 'failure' | 'denied' } : {}),
            ...(f.user ? { 'filter[user]': f.user } : {}),
            ...(from ? { 'filter[from]': from } : {}),
            ...(to ? { 'filter[to]': to } : {}),
            ...(f.search ? { search: f.search } : {}),
          },
        },
      }),
    );
  }, [page, ...FILTERS.map((k) => f[k])]);

  return (
    <>
      <PageHeader title="Audit log" />
      <form className="filters" role="search" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        <label>
          Event
          <input value={f.name} placeholder="audit.flows.* or an exact name" onChange={(e) => set('name', e.target.value)} />
        </label>
        <label>
          Module
          <input value={f.module} placeholder="flows, iam, …" onChange={(e) => set('module', e.target.value)} />
        </label>
        <label>
          Result
          <select value={f.result} onChange={(e) => set('result', e.target.value)}>
            <option value="">any</option>
            <option>success</option>
            <option>failure</option>
            <option>denied</option>
          </select>
        </label>
        <label>
          User
          <input value={f.user} placeholder="username or id" onChange={(e) => set('user', e.target.value)} />
        </label>
        <label>
          From
          <input type="datetime-local" value={f.from} onChange={(e) => set('from', e.target.value)} />
        </label>
        <label>
          To
          <input type="datetime-local" value={f.to} onChange={(e) => set('to', e.target.value)} />
        </label>
        <label>
          Text
          <input type="search" value={f.search} onChange={(e) => set('search', e.target.value)} />
        </label>
      </form>
      <ErrorNote error={list.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Audit records, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Event</th>
              <th scope="col">Result</th>
              <th scope="col">Who</th>
              <th scope="col">What</th>
              <th scope="col">Details</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((r) => (
              <tr key={r.id}>
                <td>{formatTime(r.at)}</td>
                <td>
                  <code>{r.name}</code>
                </td>
                <td>{r.result ?? '—'}</td>
                <td>
                  {r.actor?.username ?? r.serviceName ?? '—'}
                  {r.sourceIp ? <div className="muted">{r.sourceIp}</div> : null}
                </td>
                <td>{r.target ? `${r.target.type} ${r.target.name ?? r.target.id ?? ''}` : '—'}</td>
                <td>
                  {r.details ? (
                    <details>
                      <summary>Details</summary>
                      <JsonBlock value={r.details} label={`Details of audit record ${r.id}`} />
                    </details>
                  ) : (
                    '—'
                  )}
                </td>
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={6}>No records match.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={(p) => set('page', String(p))} label="Audit log" />
    </>
  );
}
