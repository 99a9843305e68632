/** One execution as a timeline of its step runs: input, output, error, attempts; retry when failed. */
import { useEffect, useState } from 'react';
import { Link, useParams } from 'react-router';
import { api, unwrap } from '../api/client';
import { watchExecutions } from '../api/live';
import { useSession } from '../auth/session';
import { ErrorNote, formatMs, formatTime, JsonBlock, PageHeader, StatusBadge, useLoad } from '../ui/common';
import { throttle } from '../ui/throttle';

export function ExecutionPage() {
  const { id = '' } = useParams();
  const session = useSession();
  const x = useLoad(() => unwrap(api.GET('/api/v1/executions/{id}', { params: { path: { id } } })).then((r) => r.data), [id]);
  const { reload } = x;
  const flowId = x.data?.flowId;
  const flow = useLoad(() => (flowId && session.can('flows.read') ? unwrap(api.GET('/api/v1/flows/{id}', { params: { path: { id: flowId } } })).then((r) => r.data) : Promise.resolve(undefined)), [flowId]);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState<string>();
  useEffect(() => {
    const again = throttle(reload, 500);
    return watchExecutions({ executionId: id, onOpen: again, onExecution: again });
  }, [id, reload]);

  const retry = async (): Promise<void> => {
    setError(undefined);
    try {
      const r = await unwrap(api.POST('/api/v1/executions/{id}/retry', { params: { path: { id } } }));
      setNotice(`Retrying ${r.data.retriedSteps} failed step${r.data.retriedSteps === 1 ? '' : 's'}.`);
      reload();
    } catch (err) {
      setError(err);
    }
  };

  if (x.error && !x.data) return <ErrorNote error={x.error} />;
  const e = x.data;
  if (!e) return <p role="status">Loading…</p>;
  const steps = [...e.steps].sort((a, b) => (a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : a.path < b.path ? -1 : 1));

  return (
    <>
      <PageHeader title={`Execution ${e.id.slice(0, 8)}`}>
        <StatusBadge status={e.status} />
        {e.status === 'failed' && session.can('executions.retry') && (
          <button type="button" className="primary" onClick={() => void retry()}>
            Retry failed steps
          </button>
        )}
      </PageHeader>
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <ErrorNote error={error} />
      <dl className="facts">
        <dt>Flow</dt>
        <dd>
          <Link to={`/flows/${e.flowId}`}>{flow.data?.name ?? e.flowId}</Link> (version {e.flowVersion ?? '—'})
        </dd>
        <dt>Trigger</dt>
        <dd>{e.trigger}</dd>
        <dt>Started</dt>
        <dd>{formatTime(e.startedAt)}</dd>
        <dt>Finished</dt>
        <dd>
          {formatTime(e.finishedAt)} ({formatMs(e.durationMs)})
        </dd>
        <dt>Steps</dt>
        <dd>
          {e.stepRuns} run, {e.failedSteps} failed, {e.pendingSteps} pending
        </dd>
      </dl>
      <h2>Step runs</h2>
      <ol className="timeline" aria-label="Step runs in order">
        {steps.map((s) => (
          <li key={s.idempotencyKey} className={`run run-${s.status}`}>
            <details open={s.status === 'failed'}>
              <summary>
                <strong>{s.nodeId}</strong> <StatusBadge status={s.status} /> attempt {s.attempt}
                {s.rebounds > 0 ? `, ${s.rebounds} rebound(s)` : ''} · {formatMs(s.durationMs)} · {formatTime(s.startedAt)}
                {s.path !== '0' ? ` · message ${s.path}` : ''}
              </summary>
              {s.error && (
                <p className="error">
                  <strong>Error:</strong> {s.error}
                </p>
              )}
              <div className="io">
                <div>
                  <h3>Input</h3>
                  <JsonBlock value={s.input} label={`Input of ${s.nodeId}`} />
                </div>
                <div>
                  <h3>Output ({s.emitted} message{s.emitted === 1 ? '' : 's'})</h3>
                  <JsonBlock value={s.output} label={`Output of ${s.nodeId}`} />
                </div>
              </div>
              <p className="muted">Idempotency key {s.idempotencyKey}</p>
            </details>
          </li>
        ))}
      </ol>
    </>
  );
}
