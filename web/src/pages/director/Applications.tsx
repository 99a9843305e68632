/** Applications of the Director: list with a label / scenario filter, cursor pages, register. */
import { useState, type FormEvent } from 'react';
import { Link, useNavigate } from 'react-router';
import { gql, INTEGRATION_LEVELS, M, Q, scenarioLabel, scenariosOf, type IntegrationLevel, type LabelFilter } from '../../api/director';
import { useSession } from '../../auth/session';
import { ConditionBadge, CursorPager, LabelChips, LabelFilterForm, useCursorPages } from '../../director/parts';
import { ErrorNote, PageHeader, useLoad } from '../../ui/common';

const PAGE_SIZE = 20;

function RegisterApplication({ scenarios }: { scenarios: string[] }) {
  const navigate = useNavigate();
  const [name, setName] = useState('');
  const [providerName, setProviderName] = useState('');
  const [description, setDescription] = useState('');
  const [healthCheckURL, setHealthCheckURL] = useState('');
  const [level, setLevel] = useState<IntegrationLevel>('APPLICATION');
  const [chosen, setChosen] = useState<string[]>(['DEFAULT']);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const input = {
        name: name.trim(),
        integrationLevel: level,
        labels: { scenarios: chosen },
        ...(providerName.trim() ? { providerName: providerName.trim() } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        ...(healthCheckURL.trim() ? { healthCheckURL: healthCheckURL.trim() } : {}),
      };
      const { registerApplication } = await gql(M.registerApplication, { in: input });
      await navigate(`/applications/${registerApplication.id}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="register-app" onSubmit={(e) => void submit(e)}>
      <h2 id="register-app">Register an application</h2>
      <div className="form-grid">
        <div>
          <label>
            Name
            <input value={name} required onChange={(e) => setName(e.target.value)} aria-describedby="app-name-help" />
          </label>
          <span id="app-name-help" className="muted">
            Lower case letters, digits and dashes (a DNS name), at most 36 characters.
          </span>
        </div>
        <label>
          Provider
          <input value={providerName} onChange={(e) => setProviderName(e.target.value)} />
        </label>
        <div>
          <label>
            Integration level
            <select value={level} onChange={(e) => setLevel(e.target.value as IntegrationLevel)} aria-describedby="level-help">
              {INTEGRATION_LEVELS.map((l) => (
                <option key={l}>{l}</option>
              ))}
            </select>
          </label>
          <span id="level-help" className="muted">
            BASIC: static metadata only; APPLICATION: manages itself; PROXY / SERVICE: another system speaks for it.
          </span>
        </div>
        <label>
          Health check URL
          <input type="url" value={healthCheckURL} onChange={(e) => setHealthCheckURL(e.target.value)} />
        </label>
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
        Register application
      </button>
    </form>
  );
}

export function ApplicationsPage() {
  const session = useSession();
  const [filter, setFilter] = useState<LabelFilter[]>([]);
  const pages = useCursorPages();
  const scenarios = useLoad(() => gql(Q.scenarios, {}).then((r) => scenariosOf(r.labelDefinition)), []);
  const list = useLoad(() => gql(Q.applications, { filter, first: PAGE_SIZE, after: pages.after }).then((r) => r.applications), [filter, pages.after]);
  const canWrite = session.can('application:write');
  return (
    <>
      <PageHeader title="Applications" />
      <p className="muted">Systems registered with the Director: their APIs, events, documents and webhooks. Runtimes in the same scenario see them.</p>
      <LabelFilterForm
        what="applications"
        scenarios={scenarios.data ?? ['DEFAULT']}
        onFilter={(f) => {
          pages.reset();
          setFilter(f);
        }}
      />
      <ErrorNote error={list.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Applications table">
        <table>
          <caption className="sr-only">Applications of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Level</th>
              <th scope="col">Scenarios</th>
              <th scope="col">Labels</th>
              <th scope="col">APIs / events</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((a) => (
              <tr key={a.id}>
                <td>
                  <Link to={`/applications/${a.id}`}>{a.name}</Link>
                  {a.providerName && <div className="muted">by {a.providerName}</div>}
                  {a.description && <div className="muted">{a.description}</div>}
                </td>
                <td>
                  <ConditionBadge condition={a.status.condition} />
                </td>
                <td>{a.integrationLevel}</td>
                <td>{scenarioLabel(a.labels).join(', ')}</td>
                <td>
                  <LabelChips labels={a.labels} skip={['scenarios', 'name']} />
                </td>
                <td>
                  {a.apiDefinitions?.totalCount ?? 0} / {a.eventDefinitions?.totalCount ?? 0}
                </td>
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={6}>No applications{filter.length ? ' match' : ' yet'}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <CursorPager label="Applications" page={pages.page} total={list.data?.totalCount} info={list.data?.pageInfo} onNext={() => list.data && pages.next(list.data.pageInfo)} onPrevious={pages.previous} />
      {canWrite && <RegisterApplication scenarios={scenarios.data ?? ['DEFAULT']} />}
    </>
  );
}
