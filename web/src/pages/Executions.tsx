/** Executions: filtered by flow, status and start time; the list follows the hub's change events. */
import { useEffect, useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { watchExecutions } from '../api/live';
import { ErrorNote, formatMs, formatTime, PageHeader, Pager, StatusBadge, useLoad } from '../ui/common';
import { throttle } from '../ui/throttle';

const STATUSES = ['running', 'succeeded', 'failed'] as const;
type Status = (typeof STATUSES)[number];

/** `<input type="datetime-local">` gives local time without a zone; the API wants an instant. */
function toInstant(local: string): string | undefined {
  if (!local) return undefined;
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export function ExecutionsPage() {
  const [params, setParams] = useSearchParams();
  const flowId = params.get('flow') ?? '';
  const status = (params.get('status') ?? '') as Status | '';
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const page = Number(params.get('page') ?? '1') || 1;
  const set = (k: string, v: string): void => {
    const next = new URLSearchParams(params);
    if (v) next.set(k, v);
    else next.delete(k);
    if (k !== 'page') next.delete('page');
    setParams(next, { replace: true });
  };

  const flows = useLoad(() => unwrap(api.GET('/api/v1/flows', { params: { query: { 'page[size]': 100, sort: 'name' } } })).then((r) => r.data), []);
  const names = useMemo(() => new Map((flows.data ?? []).map((f) => [f.id, f.name])), [flows.data]);
  const list = useLoad(() => {
    const fromAt = toInstant(from);
    const toAt = toInstant(to);
    return unwrap(
      api.GET('/api/v1/executions', {
        params: {
          query: {
            'page[number]': page,
            'page[size]': 20,
            ...(flowId ? { 'filter[flowId]': flowId } : {}),
            ...(status ? { 'filter[status]': status } : {}),
            ...(fromAt ? { 'filter[from]': fromAt } : {}),
            ...(toAt ? { 'filter[to]': toAt } : {}),
          },
        },
      }),
    );
  }, [flowId, status, from, to, page]);
  const { reload } = list;
  useEffect(() => {
    const again = throttle(reload, 1_000);
    return watchExecutions({ flowId: flowId || undefined, onOpen: again, onExecution: again });
  }, [reload, flowId]);

  return (
    <>
      <PageHeader title="Executions" />
      <form className="filters" role="search" aria-label="Filter executions" onSubmit={(e) => e.preventDefault()}>
        <label>
          Flow
          <select value={flowId} onChange={(e) => set('flow', e.target.value)}>
            <option value="">any</option>
            {(flows.data ?? []).map((f) => (
              <option key={f.id} value={f.id}>
                {f.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => set('status', e.target.value)}>
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Started after
          <input type="datetime-local" value={from} onChange={(e) => set('from', e.target.value)} />
        </label>
        <label>
          Started before
          <input type="datetime-local" value={to} onChange={(e) => set('to', e.target.value)} />
        </label>
      </form>
      <ErrorNote error={list.error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Executions, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Execution</th>
              <th scope="col">Flow</th>
              <th scope="col">Status</th>
              <th scope="col">Trigger</th>
              <th scope="col">Started</th>
              <th scope="col">Duration</th>
              <th scope="col">Steps</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((x) => (
              <tr key={x.id}>
                <td>
                  <Link to={`/executions/${x.id}`} aria-label={`Execution ${x.id}`}>
                    {x.id.slice(0, 8)}
                  </Link>
                </td>
                <td>{names.get(x.flowId) ?? x.flowId}</td>
                <td>
                  <StatusBadge status={x.status} />
                </td>
                <td>{x.trigger}</td>
                <td>{formatTime(x.startedAt)}</td>
                <td>{formatMs(x.durationMs)}</td>
                <td>
                  {x.stepRuns}
                  {x.failedSteps > 0 ? `, ${x.failedSteps} failed` : ''}
                  {x.pendingSteps > 0 ? `, ${x.pendingSteps} pending` : ''}
                </td>
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={7}>No executions match.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={(p) => set('page', String(p))} label="Executions" />
    </>
  );
}
