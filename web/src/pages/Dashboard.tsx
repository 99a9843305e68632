/** Throughput and errors over the last hour: executions per minute, failures and p99, per flow. */
import { useEffect, useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { watchExecutions } from '../api/live';
import { BarChart } from '../ui/BarChart';
import { ErrorNote, formatMs, PageHeader, useLoad } from '../ui/common';
import { throttle } from '../ui/throttle';

export function DashboardPage() {
  const [params, setParams] = useSearchParams();
  const flowId = params.get('flow') ?? '';
  const flows = useLoad(() => unwrap(api.GET('/api/v1/flows', { params: { query: { 'page[size]': 100, sort: 'name' } } })).then((r) => r.data), []);
  const names = useMemo(() => new Map((flows.data ?? []).map((f) => [f.id, f.name])), [flows.data]);
  const stats = useLoad(
    () => unwrap(api.GET('/api/v1/executions/stats', { params: { query: { minutes: 60, ...(flowId ? { 'filter[flowId]': flowId } : {}) } } })).then((r) => r.data),
    [flowId],
  );
  const { reload } = stats;
  // New executions move the figures: read them again, at most every few seconds.
  useEffect(() => {
    const again = throttle(reload, 5_000);
    return watchExecutions({ flowId: flowId || undefined, onExecution: again });
  }, [reload, flowId]);
  const s = stats.data;

  return (
    <>
      <PageHeader title="Throughput and errors" />
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Flow
          <select value={flowId} onChange={(e) => setParams(e.target.value ? { flow: e.target.value } : {}, { replace: true })}>
            <option value="">all flows</option>
            {(flows.data ?? []).map((f) => (
              <option key={f.id} value={f.id}>
                {f.name}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={stats.error} />
      {s && (
        <>
          <p>
            Last hour: <strong>{s.total.executions}</strong> executions finished, <strong>{s.total.failures}</strong> failed, p99 <strong>{formatMs(s.total.p99Ms)}</strong>.
          </p>
          <div className="charts">
            <BarChart title="Executions finished per minute (failures in red)" unit="count" partLabel="failed" bars={s.buckets.map((b) => ({ at: b.at, value: b.executions, part: b.failures }))} />
            <BarChart title="p99 duration per minute" unit="ms" bars={s.buckets.map((b) => ({ at: b.at, value: b.p99Ms ?? 0 }))} />
          </div>
          <div className="table-wrap">
            <table>
              <caption>Per flow, last hour</caption>
              <thead>
                <tr>
                  <th scope="col">Flow</th>
                  <th scope="col">Executions</th>
                  <th scope="col">Per minute</th>
                  <th scope="col">Failures</th>
                  <th scope="col">p99</th>
                </tr>
              </thead>
              <tbody>
                {s.flows.map((f) => (
                  <tr key={f.flowId}>
                    <td>
                      <Link to={`/dashboard?flow=${f.flowId}`}>{names.get(f.flowId) ?? f.flowId}</Link>
                    </td>
                    <td>{f.executions}</td>
                    <td>{(f.executions / 60).toFixed(2)}</td>
                    <td>{f.failures}</td>
                    <td>{formatMs(f.p99Ms)}</td>
                  </tr>
                ))}
                {s.flows.length === 0 && (
                  <tr>
                    <td colSpan={5}>No executions in the last hour.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </>
      )}
    </>
  );
}
