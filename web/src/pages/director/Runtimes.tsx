/** Runtimes of the Director: list with a label / scenario filter, register; one runtime's detail. */
import { useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { gql, M, Q, RUNTIME_CONDITIONS, scenarioLabel, scenariosOf, type LabelFilter, type Runtime, type RuntimeCondition } from '../../api/director';
import { useSession } from '../../auth/session';
import { ConditionBadge, CursorPager, LabelChips, LabelFilterForm, LabelsEditor, Pairing, ScenariosEditor, SystemAuths, useCursorPages } from '../../director/parts';
import { ErrorNote, formatTime, PageHeader, useLoad } from '../../ui/common';

const PAGE_SIZE = 20;
const EVENTING_KEY = 'runtime/event_service_url';

function RegisterRuntime({ scenarios }: { scenarios: string[] }) {
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [description, setDescription] = useState('');
  const [eventing, setEventing] = useState('');
  const [chosen, setChosen] = useState<string[]>(['DEFAULT']);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const labels: Record<string, unknown> = { scenarios: chosen };
      if (eventing.trim()) labels[EVENTING_KEY] = eventing.trim();
      const { registerRuntime } = await gql(M.registerRuntime, { in: { name: name.trim(), labels, ...(description.trim() ? { description: description.trim() } : {}) } });
      await navigate(`/runtimes/${registerRuntime.id}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="register-runtime" onSubmit={(e) => void submit(e)}>
      <h2 id="register-runtime">Register a runtime</h2>
      <div className="form-grid">
        <label>
          Name
          <input value={name} required onChange={(e) => setName(e.target.value)} />
        </label>
        <div>
          <label>
            Eventing URL
            <input type="url" value={eventing} onChange={(e) => setEventing(e.target.value)} aria-describedby="eventing-help" />
          </label>
          <span id="eventing-help" className="muted">
            Where applications send events (label <code>{EVENTING_KEY}</code>).
          </span>
        </div>
      </div>
      <label>
        Description
        <textarea rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <fieldset className="permissions">
        <legend>Scenarios</legend>
        {scenarios.map((s) => (
          <label key={s} className="inline">
            <input type="checkbox" checked={chosen.includes(s)} onChange={(e) => setChosen((c) => (e.target.checked ? [...c, s] : c.filter((x) => x !== s)))} />
            {s}
          </label>
        ))}
      </fieldset>
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Register runtime
      </button>
    </form>
  );
}

export function RuntimesPage() {
  const session = useSession();
  const [filter, setFilter] = useState<LabelFilter[]>([]);
  const pages = useCursorPages();
  const scenarios = useLoad(() => gql(Q.scenarios, {}).then((r) => scenariosOf(r.labelDefinition)), []);
  const list = useLoad(() => gql(Q.runtimes, { filter, first: PAGE_SIZE, after: pages.after }).then((r) => r.runtimes), [filter, pages.after]);
  return (
    <>
      <PageHeader title="Runtimes" />
      <p className="muted">Where integrations run; a runtime sees the applications of its scenarios.</p>
      <LabelFilterForm
        what="runtimes"
        scenarios={scenarios.data ?? ['DEFAULT']}
        onFilter={(f) => {
          pages.reset();
          setFilter(f);
        }}
      />
      <ErrorNote error={list.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Runtimes table">
        <table>
          <caption className="sr-only">Runtimes of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Scenarios</th>
              <th scope="col">Labels</th>
              <th scope="col">Registered</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((r) => (
              <tr key={r.id}>
                <td>
                  <Link to={`/runtimes/${r.id}`}>{r.name}</Link>
                  {r.description && <div className="muted">{r.description}</div>}
                </td>
                <td>
                  <ConditionBadge condition={r.status.condition} />
                </td>
                <td>{scenarioLabel(r.labels).join(', ')}</td>
                <td>
                  <LabelChips labels={r.labels} skip={['scenarios']} />
                </td>
                <td>{formatTime(r.metadata.creationTimestamp)}</td>
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={5}>No runtimes{filter.length ? ' match' : ' yet'}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <CursorPager label="Runtimes" page={pages.page} total={list.data?.totalCount} info={list.data?.pageInfo} onNext={() => list.data && pages.next(list.data.pageInfo)} onPrevious={pages.previous} />
      {session.can('runtime:write') && <RegisterRuntime scenarios={scenarios.data ?? ['DEFAULT']} />}
    </>
  );
}

function EditRuntime({ runtime, onDone }: { runtime: Runtime; onDone: () => void }) {
  const [name, setName] = useState(runtime.name);
  const [description, setDescription] = useState(runtime.description ?? '');
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      await gql(M.updateRuntime, { id: runtime.id, in: { name: name.trim(), labels: runtime.labels ?? {}, ...(description.trim() ? { description: description.trim() } : {}) } });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="edit-runtime" onSubmit={(e) => void submit(e)}>
      <h2 id="edit-runtime">Edit {runtime.name}</h2>
      <label>
        Name
        <input value={name} required onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Description
        <textarea rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Save runtime
      </button>
    </form>
  );
}

export function RuntimePage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const session = useSession();
  const canWrite = session.can('runtime:write');
  const runtime = useLoad(() => gql(Q.runtime, { id }).then((r) => r.runtime), [id]);
  const apps = useLoad(() => (session.can('application:read') ? gql(Q.applicationsForRuntime, { runtimeID: id }).then((r) => r.applicationsForRuntime) : Promise.resolve(undefined)), [id]);
  const scenarios = useLoad(() => gql(Q.scenarios, {}).then((r) => scenariosOf(r.labelDefinition)), []);
  const [error, setError] = useState<unknown>();
  const [condition, setCondition] = useState<RuntimeCondition | ''>('');
  const [editing, setEditing] = useState(false);
  const reload = (): void => {
    runtime.reload();
    apps.reload();
  };
  const run = async (action: () => Promise<unknown>): Promise<boolean> => {
    setError(undefined);
    try {
      await action();
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const r = runtime.data;
  if (runtime.error && !r) return <ErrorNote error={runtime.error} />;
  if (runtime.loading && !r) return <p role="status">Loading…</p>;
  if (!r) {
    return (
      <>
        <h1>Runtime not found</h1>
        <p>No runtime {id} in this tenant.</p>
      </>
    );
  }
  const waiting = new Set(r.applicationsWaitingForCredentials);
  return (
    <>
      <PageHeader title={`Runtime ${r.name}`}>
        <ConditionBadge condition={r.status.condition} />
        {canWrite && (
          <>
            <button type="button" aria-expanded={editing} onClick={() => setEditing((x) => !x)}>
              Edit
            </button>
            <button
              type="button"
              className="danger"
              onClick={() => {
                if (window.confirm(`Unregister ${r.name}? Applications in its scenarios are told.`)) void run(() => gql(M.unregisterRuntime, { id: r.id })).then((ok) => ok && navigate('/runtimes'));
              }}
            >
              Unregister
            </button>
          </>
        )}
      </PageHeader>
      <ErrorNote error={error ?? runtime.error} />
      {editing && (
        <EditRuntime
          runtime={r}
          onDone={() => {
            setEditing(false);
            reload();
          }}
        />
      )}
      <dl className="facts">
        <dt>Id</dt>
        <dd>
          <code>{r.id}</code>
        </dd>
        <dt>Status</dt>
        <dd>
          {r.status.condition} since {formatTime(r.status.timestamp)}
        </dd>
        <dt>Registered</dt>
        <dd>{formatTime(r.metadata.creationTimestamp)}</dd>
        {r.description && (
          <>
            <dt>Description</dt>
            <dd>{r.description}</dd>
          </>
        )}
        <dt>Eventing URL</dt>
        <dd>{r.eventingConfiguration?.defaultURL ? <code>{r.eventingConfiguration.defaultURL}</code> : 'none'}</dd>
      </dl>
      {canWrite && (
        <form
          className="filters"
          aria-label="Set the status"
          onSubmit={(e) => {
            e.preventDefault();
            if (condition) void run(() => gql(M.setRuntimeStatus, { id: r.id, condition })).then((ok) => ok && reload());
          }}
        >
          <label>
            Status
            <select value={condition || r.status.condition} onChange={(e) => setCondition(e.target.value as RuntimeCondition)}>
              {RUNTIME_CONDITIONS.map((c) => (
                <option key={c}>{c}</option>
              ))}
            </select>
          </label>
          <button type="submit">Set status</button>
          <p className="muted">The runtime's agent reports its status itself; set it here to correct one that cannot.</p>
        </form>
      )}
      <Pairing
        what="runtime"
        status={r.oneTimeToken}
        canWrite={canWrite}
        onRequest={async () => {
          const { requestOneTimeTokenForRuntime } = await gql(M.requestRuntimeToken, { id: r.id });
          runtime.reload();
          return requestOneTimeTokenForRuntime;
        }}
        onCheck={runtime.reload}
      />
      <ScenariosEditor
        current={scenarioLabel(r.labels)}
        available={scenarios.data ?? ['DEFAULT']}
        canWrite={canWrite}
        onSave={async (list) => {
          await gql(M.setRuntimeLabel, { id: r.id, key: 'scenarios', value: list });
          reload();
        }}
      />
      <LabelsEditor
        labels={r.labels}
        canWrite={canWrite}
        onSet={async (key, value) => {
          await gql(M.setRuntimeLabel, { id: r.id, key, value });
          reload();
        }}
        onDelete={async (key) => {
          await gql(M.deleteRuntimeLabel, { id: r.id, key });
          reload();
        }}
      />
      <SystemAuths
        what="runtime"
        auths={r.auths}
        canWrite={canWrite}
        onIssue={async () => {
          const { requestClientCredentialsForRuntime } = await gql(M.requestRuntimeCredentials, { id: r.id });
          runtime.reload();
          return requestClientCredentialsForRuntime;
        }}
        onRevoke={async (authId) => {
          await gql(M.deleteRuntimeAuth, { id: authId });
          runtime.reload();
        }}
      />
      {apps.data && (
        <section aria-labelledby="runtime-apps">
          <h2 id="runtime-apps">Applications it sees ({apps.data.totalCount})</h2>
          <p className="muted">The configuration this runtime is given: the applications of its scenarios, and whether each has set credentials for it.</p>
          <div className="table-wrap" tabIndex={0} role="region" aria-label="Applications it sees table">
            <table>
              <caption className="sr-only">Applications in the runtime's scenarios</caption>
              <thead>
                <tr>
                  <th scope="col">Application</th>
                  <th scope="col">Status</th>
                  <th scope="col">Scenarios</th>
                  <th scope="col">API credentials</th>
                </tr>
              </thead>
              <tbody>
                {apps.data.data.map((a) => (
                  <tr key={a.id}>
                    <td>
                      <Link to={`/applications/${a.id}`}>{a.name}</Link>
                    </td>
                    <td>
                      <ConditionBadge condition={a.status.condition} />
                    </td>
                    <td>{scenarioLabel(a.labels).join(', ')}</td>
                    <td>{waiting.has(a.id) ? 'waiting for the application' : 'set or not needed'}</td>
                  </tr>
                ))}
                {apps.data.data.length === 0 && (
                  <tr>
                    <td colSpan={4}>No application shares a scenario with it.</td>
                  </tr>
                )}
              </tbody>
            </table>
          </div>
        </section>
      )}
      <ErrorNote error={apps.error} />
    </>
  );
}
