/** Flows: status (live), search, status filter and pages. */
import { useEffect, useState } from 'react';
import { Link } from 'react-router';
import { api, unwrap } from '../api/client';
import { watchFlows } from '../api/live';
import { useSession } from '../auth/session';
import { ErrorNote, formatTime, PageHeader, Pager, StatusBadge, useLoad } from '../ui/common';

const STATUSES = ['inactive', 'starting', 'active', 'stopping'] as const;
type Status = (typeof STATUSES)[number];

export function FlowsPage() {
  const session = useSession();
  const [search, setSearch] = useState('');
  const [status, setStatus] = useState<Status | ''>('');
  const [page, setPage] = useState(1);
  const list = useLoad(
    () =>
      unwrap(
        api.GET('/api/v1/flows', {
          params: { query: { 'page[number]': page, 'page[size]': 20, sort: '-updatedAt', ...(search ? { search } : {}), ...(status ? { 'filter[status]': status } : {}) } },
        }),
      ),
    [page, search, status],
  );
  const { reload } = list;
  // Status changes arrive as events; the list is read again only when one of them is shown.
  const [live, setLive] = useState<Record<string, string>>({});
  useEffect(() => watchFlows({ onOpen: reload, onFlow: (f) => setLive((l) => ({ ...l, [f.id]: f.status })) }), [reload]);

  return (
    <>
      <PageHeader title="Flows">
        {session.can('flows.write') && (
          <Link className="button primary" to="/flows/new">
            New flow
          </Link>
        )}
      </PageHeader>
      <form className="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          Search
          <input type="search" value={search} onChange={(e) => (setPage(1), setSearch(e.target.value))} placeholder="name or description" />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => (setPage(1), setStatus(e.target.value as Status | ''))}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={list.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Flows of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Trigger</th>
              <th scope="col">Version</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((f) => (
              <tr key={f.id}>
                <td>
                  <Link to={`/flows/${f.id}`}>{f.name}</Link>
                  {f.description && <div className="muted">{f.description}</div>}
                </td>
                <td>
                  <StatusBadge status={live[f.id] ?? f.status} />
                  {f.statusReason && <div className="muted">{f.statusReason}</div>}
                </td>
                <td>{f.cron ? `schedule ${f.cron}` : 'webhook'}</td>
                <td>{f.version}</td>
                <td>{formatTime(f.updatedAt)}</td>
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={5}>No flows{search || status ? ' match' : ' yet'}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={setPage} label="Flows" />
    </>
  );
}
