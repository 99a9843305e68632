/**
 * gRPC workers (the router module): the workers of the tenant attached to this hub process —
 * components and versions, in-flight deliveries against their concurrency, last heartbeat — and
 * enrolment secrets: create one (shown once, with a copy button and its expiry) and see which
 * were used, by which worker. Read again on demand: workers report no stream the page could follow.
 */
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import { useSession } from '../auth/session';
import { timeLeft } from '../director/pairing';
import { CopyButton, ErrorNote, formatTime, PageHeader, useLoad } from '../ui/common';

const EXPIRIES = [
  { seconds: 3_600, label: '1 hour' },
  { seconds: 86_400, label: '1 day' },
  { seconds: 7 * 86_400, label: '7 days' },
  { seconds: 30 * 86_400, label: '30 days' },
] as const;

/** `name`, `name@2`, `name@2.1` or `*`, separated by commas, spaces or lines. */
export function parseComponents(text: string): string[] {
  return [...new Set(text.split(/[\s,]+/).filter(Boolean))];
}

/** How long ago, roughly, for heartbeats (`12 s ago`, `3 min ago`). */
function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function CreateEnrolment({ onCreated }: { onCreated: () => void }) {
  const [components, setComponents] = useState('');
  const [expires, setExpires] = useState<number>(86_400);
  const [created, setCreated] = useState<{ secret: string; expiresAt: string; components: string[] }>();
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setCreated(undefined);
    try {
      const r = await unwrap(api.POST('/api/v1/workers/enrolments', { body: { components: parseComponents(components), expiresInSeconds: expires } }));
      setCreated({ secret: r.data.secret, expiresAt: r.data.expiresAt, components: r.data.components });
      setComponents('');
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="create-enrolment" onSubmit={(e) => void submit(e)}>
      <h2 id="create-enrolment">Enrol a worker</h2>
      <p className="muted">A single-use secret: the worker presents it once (<code>plexus worker --secret …</code>) and gets its own credential back.</p>
      <div className="form-grid">
        <div>
          <label>
            Components it may serve
            <input value={components} required onChange={(e) => setComponents(e.target.value)} placeholder="e.g. shop-sync@2, mailer" aria-describedby="components-help" />
          </label>
          <span id="components-help" className="muted">
            <code>name</code> (any version), <code>name@2</code>, <code>name@2.1</code>, or <code>*</code>; separated by commas.
          </span>
        </div>
        <label>
          Expires unused after
          <select value={expires} onChange={(e) => setExpires(Number(e.target.value))}>
            {EXPIRIES.map((x) => (
              <option key={x.seconds} value={x.seconds}>
                {x.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <ErrorNote error={error} />
      {created && (
        <div className="notice" role="status">
          <p>
            An enrolment secret for {created.components.join(', ')}, valid until <span aria-label="Secret expires">{formatTime(created.expiresAt)}</span>. It is shown this once:
          </p>
          <p className="wrap">
            <code aria-label="Enrolment secret">{created.secret}</code> <CopyButton text={created.secret} label="Copy the enrolment secret" />
          </p>
        </div>
      )}
      <button type="submit" className="primary">
        Create enrolment secret
      </button>
    </form>
  );
}

export function WorkersPage() {
  const session = useSession();
  const workers = useLoad(() => unwrap(api.GET('/api/v1/workers')).then((r) => r.data), []);
  const enrolments = useLoad(() => unwrap(api.GET('/api/v1/workers/enrolments')).then((r) => r.data), []);
  // The time the lists were read: heartbeats are "ago" from then, not from a ticking clock.
  const [readAt, setReadAt] = useState(() => Date.now());
  const reload = (): void => {
    setReadAt(Date.now());
    workers.reload();
    enrolments.reload();
  };
  return (
    <>
      <PageHeader title="Workers">
        <button type="button" onClick={reload}>
          Read again
        </button>
      </PageHeader>
      <p className="muted">Processes attached over gRPC that run flow steps (<code>runtime: workers</code>) for this tenant, as this hub process sees them.</p>
      <ErrorNote error={workers.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Attached workers table">
        <table>
          <caption className="sr-only">Attached workers</caption>
          <thead>
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Components</th>
              <th scope="col">In flight</th>
              <th scope="col">Last heartbeat</th>
              <th scope="col">Connected</th>
              <th scope="col">Connection</th>
            </tr>
          </thead>
          <tbody>
            {workers.data?.map((w) => (
              <tr key={w.sessionId}>
                <td>
                  <code>{w.workerId}</code>
                  {w.draining && (
                    <>
                      {' '}
                      <span className="badge badge-stopping">draining</span>
                    </>
                  )}
                </td>
                <td>
                  <ul className="chips">
                    {w.components.map((c) => (
                      <li key={`${c.name}@${c.version}`}>
                        <code>
                          {c.name}@{c.version}
                        </code>{' '}
                        <span className="muted">{c.functions.join(', ')}</span>
                      </li>
                    ))}
                  </ul>
                </td>
                <td>
                  {w.inFlight} of {w.concurrency}
                </td>
                <td>
                  {formatTime(w.lastHeartbeatAt)} <span className="muted">({ago(w.lastHeartbeatAt, readAt)})</span>
                </td>
                <td>{formatTime(w.connectedAt)}</td>
                <td>
                  {w.secure ? 'TLS' : 'plain'} · {w.aggregator}/{w.instanceId}
                </td>
              </tr>
            ))}
            {workers.data?.length === 0 && (
              <tr>
                <td colSpan={6}>No worker attached.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <section aria-labelledby="enrolments-heading">
        <h2 id="enrolments-heading">Enrolment secrets</h2>
        <ErrorNote error={enrolments.error} />
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Enrolment secrets table">
          <table>
            <caption className="sr-only">Enrolment secrets of this tenant (never the secrets)</caption>
            <thead>
              <tr>
                <th scope="col">Id</th>
                <th scope="col">Components</th>
                <th scope="col">Created</th>
                <th scope="col">Expires</th>
                <th scope="col">Used</th>
              </tr>
            </thead>
            <tbody>
              {enrolments.data?.map((e) => (
                <tr key={e.id}>
                  <td>
                    <code>{e.id}</code>
                  </td>
                  <td>{e.components.join(', ')}</td>
                  <td>{formatTime(e.createdAt)}</td>
                  <td>
                    {formatTime(e.expiresAt)}
                    {!e.usedAt && timeLeft(e.expiresAt, readAt) === 'expired' && ' (expired unused)'}
                  </td>
                  <td>{e.usedAt ? `${formatTime(e.usedAt)} by ${e.workerId ?? '?'}` : 'not yet'}</td>
                </tr>
              ))}
              {enrolments.data?.length === 0 && (
                <tr>
                  <td colSpan={5}>No enrolment secrets.</td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      </section>
      {session.can('workers.write') && <CreateEnrolment onCreated={enrolments.reload} />}
    </>
  );
}
