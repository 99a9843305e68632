/**
 * One application: status, facts, scenarios and labels, its API and event definitions with the
 * spec rendered, documents (markdown), webhooks with their signing secret shown once and every
 * delivery attempt, and unregister.
 */
import { useState, type FormEvent } from 'react';
import { useNavigate, useParams } from 'react-router';
import {
  gql,
  INTEGRATION_LEVELS,
  M,
  Q,
  scenarioLabel,
  scenariosOf,
  type APIDefinition,
  type Application,
  type AuthInput,
  type EventDefinition,
  type IntegrationLevel,
  type SpecFormat,
  type SpecInput,
} from '../../api/director';
import { useSession } from '../../auth/session';
import { ConditionBadge, FetchState, LabelsEditor, MarkdownView, Pairing, ScenariosEditor, SpecView, SystemAuths } from '../../director/parts';
import { CopyButton, ErrorNote, formatTime, PageHeader, useLoad } from '../../ui/common';

type Kind = 'api' | 'event';

/** Runs a change, shows its error, reloads on success. */
function useAction(reload: () => void): { error: unknown; run: (action: () => Promise<unknown>) => Promise<boolean> } {
  const [error, setError] = useState<unknown>();
  return {
    error,
    run: async (action) => {
      setError(undefined);
      try {
        await action();
        reload();
        return true;
      } catch (err) {
        setError(err);
        return false;
      }
    },
  };
}

function AddDefinition({ kind, applicationID, onAdded }: { kind: Kind; applicationID: string; onAdded: () => void }) {
  const [name, setName] = useState('');
  const [targetURL, setTargetURL] = useState('');
  const [group, setGroup] = useState('');
  const [version, setVersion] = useState('');
  const [specType, setSpecType] = useState(kind === 'api' ? 'OPEN_API' : 'ASYNC_API');
  const [format, setFormat] = useState<SpecFormat>('YAML');
  const [source, setSource] = useState<'none' | 'inline' | 'fetch'>('inline');
  const [data, setData] = useState('');
  const [url, setUrl] = useState('');
  const [authKind, setAuthKind] = useState<'none' | 'basic' | 'oauth'>('none');
  const [authId, setAuthId] = useState('');
  const [authSecret, setAuthSecret] = useState('');
  const [authUrl, setAuthUrl] = useState('');
  const [error, setError] = useState<unknown>();
  const label = kind === 'api' ? 'API' : 'event';
  const prefix = `add-${kind}`;
  // What a runtime calls the API with when it has no credentials of its own (BASIC applications rely on it).
  const defaultAuth: AuthInput | undefined =
    authKind === 'basic'
      ? { credential: { basic: { username: authId, password: authSecret } } }
      : authKind === 'oauth'
        ? { credential: { oauth: { clientId: authId, clientSecret: authSecret, url: authUrl.trim() } } }
        : undefined;
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    const spec: SpecInput | undefined =
      source === 'inline' ? { type: specType, format, data } : source === 'fetch' ? { type: specType, format, fetchRequest: { url: url.trim() } } : undefined;
    const common = {
      name: name.trim(),
      ...(group.trim() ? { group: group.trim() } : {}),
      ...(version.trim() ? { version: { value: version.trim() } } : {}),
      ...(spec ? { spec } : {}),
    };
    try {
      if (kind === 'api') await gql(M.addAPIDefinition, { id: applicationID, in: { ...common, targetURL: targetURL.trim(), ...(defaultAuth ? { defaultAuth } : {}) } });
      else await gql(M.addEventDefinition, { id: applicationID, in: common });
      setName('');
      setTargetURL('');
      setGroup('');
      setVersion('');
      setData('');
      setUrl('');
      setAuthSecret('');
      onAdded();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby={prefix} onSubmit={(e) => void submit(e)}>
      <h3 id={prefix}>Add an {label} definition</h3>
      <div className="form-grid">
        <label>
          {kind === 'api' ? 'API name' : 'Event name'}
          <input value={name} required onChange={(e) => setName(e.target.value)} />
        </label>
        {kind === 'api' && (
          <label>
            Target URL
            <input type="url" value={targetURL} required onChange={(e) => setTargetURL(e.target.value)} />
          </label>
        )}
        <label>
          Group
          <input value={group} onChange={(e) => setGroup(e.target.value)} />
        </label>
        <label>
          Version
          <input value={version} onChange={(e) => setVersion(e.target.value)} placeholder="e.g. v1" />
        </label>
        {kind === 'api' && (
          <label>
            Spec type
            <select value={specType} onChange={(e) => setSpecType(e.target.value)}>
              <option>OPEN_API</option>
              <option>ODATA</option>
            </select>
          </label>
        )}
        <label>
          Spec format
          <select value={format} onChange={(e) => setFormat(e.target.value as SpecFormat)}>
            <option>YAML</option>
            <option>JSON</option>
            <option>XML</option>
          </select>
        </label>
      </div>
      <fieldset>
        <legend>The spec</legend>
        {(['inline', 'fetch', 'none'] as const).map((s) => (
          <label key={s} className="inline">
            <input type="radio" name={`${prefix}-source`} checked={source === s} onChange={() => setSource(s)} />
            {s === 'inline' ? 'Paste it' : s === 'fetch' ? 'Fetch it from a URL' : 'No spec'}
          </label>
        ))}
        {source === 'inline' && (
          <label>
            Spec document
            <textarea rows={8} value={data} required onChange={(e) => setData(e.target.value)} spellCheck={false} />
          </label>
        )}
        {source === 'fetch' && (
          <label>
            Spec URL
            <input type="url" value={url} required onChange={(e) => setUrl(e.target.value)} />
          </label>
        )}
      </fieldset>
      {kind === 'api' && (
        <fieldset>
          <legend>Default credentials</legend>
          {(['none', 'basic', 'oauth'] as const).map((k) => (
            <label key={k} className="inline">
              <input type="radio" name={`${prefix}-auth`} checked={authKind === k} onChange={() => setAuthKind(k)} />
              {k === 'none' ? 'None' : k === 'basic' ? 'Basic' : 'OAuth client credentials'}
            </label>
          ))}
          {authKind !== 'none' && (
            <div className="form-grid">
              <label>
                {authKind === 'basic' ? 'Username' : 'Client id'}
                <input value={authId} required autoComplete="off" onChange={(e) => setAuthId(e.target.value)} />
              </label>
              <label>
                {authKind === 'basic' ? 'Password' : 'Client secret'}
                <input type="password" value={authSecret} required autoComplete="new-password" onChange={(e) => setAuthSecret(e.target.value)} />
              </label>
              {authKind === 'oauth' && (
                <label>
                  Token URL
                  <input type="url" value={authUrl} required onChange={(e) => setAuthUrl(e.target.value)} />
                </label>
              )}
            </div>
          )}
        </fieldset>
      )}
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Add {label}
      </button>
    </form>
  );
}

function Definition({ kind, def, canWrite, onChanged }: { kind: Kind; def: APIDefinition | EventDefinition; canWrite: boolean; onChanged: () => void }) {
  const { error, run } = useAction(onChanged);
  const api = kind === 'api' ? (def as APIDefinition) : undefined;
  const label = kind === 'api' ? 'API' : 'event';
  return (
    <article className="card definition" aria-labelledby={`def-${def.id}`}>
      <header className="page-header">
        <h3 id={`def-${def.id}`}>
          {def.name}
          {def.version && <span className="muted"> {def.version.value}{def.version.deprecated ? ' (deprecated)' : ''}</span>}
        </h3>
        {canWrite && (
          <div className="actions">
            {def.spec?.fetchRequest && (
              <button type="button" onClick={() => void run(() => (kind === 'api' ? gql(M.refetchAPISpec, { id: def.id }) : gql(M.refetchEventDefinitionSpec, { id: def.id })))}>
                Fetch the spec again
              </button>
            )}
            <button
              type="button"
              className="danger"
              aria-label={`Delete ${label} ${def.name}`}
              onClick={() => {
                if (window.confirm(`Delete the ${label} definition ${def.name}?`)) void run(() => (kind === 'api' ? gql(M.deleteAPIDefinition, { id: def.id }) : gql(M.deleteEventDefinition, { id: def.id })));
              }}
            >
              Delete
            </button>
          </div>
        )}
      </header>
      {def.description && <p>{def.description}</p>}
      <dl className="facts">
        {api && (
          <>
            <dt>Target URL</dt>
            <dd>
              <code>{api.targetURL}</code>
            </dd>
          </>
        )}
        {api?.defaultAuth && (
          <>
            <dt>Default credentials</dt>
            <dd>
              {api.defaultAuth.credential.username !== undefined
                ? `basic, user ${api.defaultAuth.credential.username}`
                : `OAuth client ${api.defaultAuth.credential.clientId ?? ''} at ${api.defaultAuth.credential.url ?? ''}`}{' '}
              <span className="muted">(secret kept by the hub)</span>
            </dd>
          </>
        )}
        {def.group && (
          <>
            <dt>Group</dt>
            <dd>{def.group}</dd>
          </>
        )}
      </dl>
      <ErrorNote error={error} />
      {def.spec ? <SpecView spec={def.spec} label={`Spec of ${def.name}`} /> : <p className="muted">No spec.</p>}
    </article>
  );
}

function Documents({ app, canWrite, onChanged }: { app: Application; canWrite: boolean; onChanged: () => void }) {
  const { error, run } = useAction(onChanged);
  const [title, setTitle] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [description, setDescription] = useState('');
  const [data, setData] = useState('');
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const ok = await run(() => gql(M.addDocument, { id: app.id, in: { title: title.trim(), displayName: displayName.trim() || title.trim(), description, format: 'MARKDOWN', data } }));
    if (ok) {
      setTitle('');
      setDisplayName('');
      setDescription('');
      setData('');
    }
  };
  const docs = app.documents?.data ?? [];
  return (
    <section aria-labelledby="docs-heading">
      <h2 id="docs-heading">Documents ({app.documents?.totalCount ?? 0})</h2>
      {docs.map((d) => (
        <article key={d.id} className="card" aria-labelledby={`doc-${d.id}`}>
          <header className="page-header">
            <h3 id={`doc-${d.id}`}>{d.displayName || d.title}</h3>
            {canWrite && (
              <div className="actions">
                <button type="button" className="danger" aria-label={`Delete document ${d.title}`} onClick={() => window.confirm(`Delete the document ${d.title}?`) && void run(() => gql(M.deleteDocument, { id: d.id }))}>
                  Delete
                </button>
              </div>
            )}
          </header>
          {d.description && <p className="muted">{d.description}</p>}
          <FetchState fetchRequest={d.fetchRequest} />
          {d.data ? <MarkdownView source={d.data} /> : <p className="muted">No content yet.</p>}
        </article>
      ))}
      {canWrite && (
        <form className="card" aria-labelledby="add-doc" onSubmit={(e) => void submit(e)}>
          <h3 id="add-doc">Add a document</h3>
          <div className="form-grid">
            <label>
              Title
              <input value={title} required onChange={(e) => setTitle(e.target.value)} />
            </label>
            <label>
              Display name
              <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} placeholder="the title when empty" />
            </label>
          </div>
          <label>
            Summary
            <input value={description} required onChange={(e) => setDescription(e.target.value)} />
          </label>
          <label>
            Markdown
            <textarea rows={6} value={data} required onChange={(e) => setData(e.target.value)} />
          </label>
          <button type="submit" className="primary">
            Add document
          </button>
        </form>
      )}
      <ErrorNote error={error} />
    </section>
  );
}

function Webhooks({ app, canWrite, onChanged }: { app: Application; canWrite: boolean; onChanged: () => void }) {
  const { error, run } = useAction(onChanged);
  const [url, setUrl] = useState('');
  const [created, setCreated] = useState<{ url: string; secret: string }>();
  const deliveries = useLoad(() => gql(Q.webhookDeliveries, { applicationID: app.id, first: 50 }).then((r) => r.webhookDeliveries), [app.id]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setCreated(undefined);
    await run(async () => {
      const { addWebhook } = await gql(M.addWebhook, { id: app.id, url: url.trim() });
      setCreated({ url: addWebhook.url, secret: addWebhook.signingSecret ?? '' });
      setUrl('');
    });
  };
  const hooks = app.webhooks ?? [];
  return (
    <section aria-labelledby="webhooks-heading">
      <h2 id="webhooks-heading">Webhooks</h2>
      <p className="muted">CONFIGURATION_CHANGED: called when a runtime in one of its scenarios becomes ready or changes, signed with Standard Webhooks headers.</p>
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Webhooks table">
        <table>
          <caption className="sr-only">Webhooks</caption>
          <thead>
            <tr>
              <th scope="col">Type</th>
              <th scope="col">URL</th>
              {canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {hooks.map((w) => (
              <tr key={w.id}>
                <td>{w.type}</td>
                <td>
                  <code>{w.url}</code>
                </td>
                {canWrite && (
                  <td>
                    <button type="button" className="danger" aria-label={`Delete webhook ${w.url}`} onClick={() => window.confirm(`Delete the webhook to ${w.url}?`) && void run(() => gql(M.deleteWebhook, { id: w.id }))}>
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
            {hooks.length === 0 && (
              <tr>
                <td colSpan={3}>No webhooks{app.integrationLevel === 'BASIC' ? ': a BASIC application gets none' : ''}.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {created && (
        <div className="notice" role="status">
          <p>
            Webhook to <code>{created.url}</code> added. Its signing secret is shown this once; give it to the application to check the <code>webhook-signature</code> header:
          </p>
          <p>
            <code aria-label="Signing secret">{created.secret}</code> <CopyButton text={created.secret} label="Copy the signing secret" />
          </p>
        </div>
      )}
      {canWrite && app.integrationLevel !== 'BASIC' && (
        <form className="filters" aria-label="Add a webhook" onSubmit={(e) => void submit(e)}>
          <label>
            Webhook URL
            <input type="url" value={url} required onChange={(e) => setUrl(e.target.value)} />
          </label>
          <button type="submit">Add webhook</button>
        </form>
      )}
      <ErrorNote error={error} />
      <h3>Deliveries</h3>
      <ErrorNote error={deliveries.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Deliveries table">
        <table>
          <caption className="sr-only">Webhook deliveries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Created</th>
              <th scope="col">Status</th>
              <th scope="col">Attempts</th>
              <th scope="col">Last answer</th>
              <th scope="col">Next attempt</th>
              <th scope="col">Message id</th>
            </tr>
          </thead>
          <tbody>
            {deliveries.data?.data.map((d) => (
              <tr key={d.id}>
                <td>{formatTime(d.createdAt)}</td>
                <td>
                  <ConditionBadge condition={d.status} />
                </td>
                <td>{d.attempts}</td>
                <td>
                  {d.httpStatus ?? '—'}
                  {d.error && <div className="error">{d.error}</div>}
                </td>
                <td>{formatTime(d.nextAttemptAt)}</td>
                <td>
                  <code>{d.messageID}</code>
                </td>
              </tr>
            ))}
            {deliveries.data?.data.length === 0 && (
              <tr>
                <td colSpan={6}>No deliveries yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <button type="button" onClick={deliveries.reload}>
        Read deliveries again
      </button>
    </section>
  );
}

function EditApplication({ app, onDone }: { app: Application; onDone: () => void }) {
  const [name, setName] = useState(app.name);
  const [providerName, setProviderName] = useState(app.providerName ?? '');
  const [description, setDescription] = useState(app.description ?? '');
  const [healthCheckURL, setHealthCheckURL] = useState(app.healthCheckURL ?? '');
  const [level, setLevel] = useState<IntegrationLevel>(app.integrationLevel);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const input = {
        name: name.trim(),
        integrationLevel: level,
        ...(providerName.trim() ? { providerName: providerName.trim() } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        ...(healthCheckURL.trim() ? { healthCheckURL: healthCheckURL.trim() } : {}),
      };
      await gql(M.updateApplication, { id: app.id, in: input });
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="edit-app" onSubmit={(e) => void submit(e)}>
      <h2 id="edit-app">Edit {app.name}</h2>
      <div className="form-grid">
        <label>
          Name
          <input value={name} required onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Provider
          <input value={providerName} onChange={(e) => setProviderName(e.target.value)} />
        </label>
        <label>
          Integration level
          <select value={level} onChange={(e) => setLevel(e.target.value as IntegrationLevel)}>
            {INTEGRATION_LEVELS.map((l) => (
              <option key={l}>{l}</option>
            ))}
          </select>
        </label>
        <label>
          Health check URL
          <input type="url" value={healthCheckURL} onChange={(e) => setHealthCheckURL(e.target.value)} />
        </label>
      </div>
      <label>
        Description
        <textarea rows={2} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Save application
      </button>
    </form>
  );
}

export function ApplicationPage() {
  const { id = '' } = useParams();
  const navigate = useNavigate();
  const session = useSession();
  const canWrite = session.can('application:write');
  const app = useLoad(() => gql(Q.application, { id }).then((r) => r.application), [id]);
  const scenarios = useLoad(() => gql(Q.scenarios, {}).then((r) => scenariosOf(r.labelDefinition)), []);
  const [editing, setEditing] = useState(false);
  const [unregisterError, setUnregisterError] = useState<unknown>();
  const a = app.data;
  if (app.error && !a) return <ErrorNote error={app.error} />;
  if (app.loading && !a) return <p role="status">Loading…</p>;
  if (!a) {
    return (
      <>
        <h1>Application not found</h1>
        <p>No application {id} in this tenant.</p>
      </>
    );
  }
  const unregister = async (): Promise<void> => {
    if (!window.confirm(`Unregister ${a.name}? Its APIs, events, documents, webhooks and credentials go with it.`)) return;
    // Not read again after: the page would show "not found" before the list.
    try {
      await gql(M.unregisterApplication, { id: a.id });
      await navigate('/applications');
    } catch (err) {
      setUnregisterError(err);
    }
  };
  return (
    <>
      <PageHeader title={`Application ${a.name}`}>
        <ConditionBadge condition={a.status.condition} />
        {canWrite && (
          <>
            <button type="button" aria-expanded={editing} onClick={() => setEditing((x) => !x)}>
              Edit
            </button>
            <button type="button" className="danger" onClick={() => void unregister()}>
              Unregister
            </button>
          </>
        )}
      </PageHeader>
      <ErrorNote error={unregisterError ?? app.error} />
      {editing && (
        <EditApplication
          app={a}
          onDone={() => {
            setEditing(false);
            app.reload();
          }}
        />
      )}
      <dl className="facts">
        <dt>Id</dt>
        <dd>
          <code>{a.id}</code>
        </dd>
        <dt>Status</dt>
        <dd>
          {a.status.condition} since {formatTime(a.status.timestamp)}
        </dd>
        <dt>Integration level</dt>
        <dd>{a.integrationLevel}</dd>
        {a.providerName && (
          <>
            <dt>Provider</dt>
            <dd>{a.providerName}</dd>
          </>
        )}
        {a.description && (
          <>
            <dt>Description</dt>
            <dd>{a.description}</dd>
          </>
        )}
        {a.healthCheckURL && (
          <>
            <dt>Health check</dt>
            <dd>
              <code>{a.healthCheckURL}</code>
            </dd>
          </>
        )}
        <dt>Eventing</dt>
        <dd>{a.eventingConfiguration?.defaultURL ? <code>{a.eventingConfiguration.defaultURL}</code> : 'no default runtime'}</dd>
      </dl>
      {a.integrationLevel !== 'BASIC' ? (
        <Pairing
          what="application"
          status={a.oneTimeToken}
          canWrite={canWrite}
          onRequest={async () => {
            const { requestOneTimeTokenForApplication } = await gql(M.requestApplicationToken, { id: a.id });
            app.reload();
            return requestOneTimeTokenForApplication;
          }}
          onCheck={app.reload}
        />
      ) : (
        <section aria-labelledby="pairing-heading">
          <h2 id="pairing-heading">Pairing</h2>
          <p className="muted">A BASIC application is registered with static metadata and is not paired; change its integration level to pair it.</p>
        </section>
      )}
      <ScenariosEditor
        current={scenarioLabel(a.labels)}
        available={scenarios.data ?? ['DEFAULT']}
        canWrite={canWrite}
        onSave={async (list) => {
          await gql(M.setApplicationLabel, { id: a.id, key: 'scenarios', value: list });
          app.reload();
        }}
      />
      <LabelsEditor
        labels={a.labels}
        canWrite={canWrite}
        readOnlyKeys={['name']}
        onSet={async (key, value) => {
          await gql(M.setApplicationLabel, { id: a.id, key, value });
          app.reload();
        }}
        onDelete={async (key) => {
          await gql(M.deleteApplicationLabel, { id: a.id, key });
          app.reload();
        }}
      />
      <section aria-labelledby="apis-heading">
        <h2 id="apis-heading">API definitions ({a.apiDefinitions?.totalCount ?? 0})</h2>
        {a.apiDefinitions?.data.map((d) => <Definition key={d.id} kind="api" def={d} canWrite={canWrite} onChanged={app.reload} />)}
        {canWrite && <AddDefinition kind="api" applicationID={a.id} onAdded={app.reload} />}
      </section>
      <section aria-labelledby="events-heading">
        <h2 id="events-heading">Event definitions ({a.eventDefinitions?.totalCount ?? 0})</h2>
        {a.eventDefinitions?.data.map((d) => <Definition key={d.id} kind="event" def={d} canWrite={canWrite} onChanged={app.reload} />)}
        {canWrite && <AddDefinition kind="event" applicationID={a.id} onAdded={app.reload} />}
      </section>
      <Documents app={a} canWrite={canWrite} onChanged={app.reload} />
      {a.integrationLevel !== 'BASIC' && (
        <SystemAuths
          what="application"
          auths={a.auths}
          canWrite={canWrite}
          onIssue={async () => {
            const { requestClientCredentialsForApplication } = await gql(M.requestApplicationCredentials, { id: a.id });
            app.reload();
            return requestClientCredentialsForApplication;
          }}
          onRevoke={async (authId) => {
            await gql(M.deleteApplicationAuth, { id: authId });
            app.reload();
          }}
        />
      )}
      <Webhooks app={a} canWrite={canWrite} onChanged={app.reload} />
    </>
  );
}
