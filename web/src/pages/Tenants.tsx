/**
 * Tenants, for platform admins: create, rename, delete an empty one, and each tenant's limits
 * (its overrides beside the installation's defaults; every hub process applies a change within
 * a second).
 */
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import type { paths } from '../api/schema';
import { useSession } from '../auth/session';
import { ErrorNote, formatTime, PageHeader, Pager, useLoad } from '../ui/common';

type Limits = paths['/api/v1/tenants/{id}/limits']['get']['responses']['200']['content']['application/json']['data']['limits'];
type LimitKey = keyof Limits;

const LIMITS: ReadonlyArray<{ key: LimitKey; label: string }> = [
  { key: 'webhookRequestsPerSecond', label: 'Webhook requests per second' },
  { key: 'webhookBytesPerSecond', label: 'Webhook bytes per second' },
  { key: 'webhookInFlightBytes', label: 'Webhook bytes in flight' },
  { key: 'concurrentExecutions', label: 'Concurrent executions' },
  { key: 'messagesPerExecution', label: 'Messages per execution' },
  { key: 'codeSlots', label: 'Code slots' },
];

function TenantLimits({ tenant, canWrite }: { tenant: string; canWrite: boolean }) {
  const limits = useLoad(() => unwrap(api.GET('/api/v1/tenants/{id}/limits', { params: { path: { id: tenant } } })).then((r) => r.data), [tenant]);
  const [draft, setDraft] = useState<Partial<Record<LimitKey, string>>>({});
  const [error, setError] = useState<unknown>();
  const [saved, setSaved] = useState(false);
  const data = limits.data;
  const valueOf = (key: LimitKey): string => draft[key] ?? (data?.overrides[key] !== undefined ? String(data.overrides[key]) : '');
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    const body: Partial<Limits> = {};
    for (const { key } of LIMITS) {
      const v = valueOf(key).trim();
      if (v) body[key] = Number(v);
    }
    try {
      await unwrap(api.PUT('/api/v1/tenants/{id}/limits', { params: { path: { id: tenant } }, body }));
      setDraft({});
      setSaved(true);
      limits.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby={`limits-${tenant}`} onSubmit={(e) => void submit(e)}>
      <h3 id={`limits-${tenant}`}>Limits of {tenant}</h3>
      <p className="muted">Empty: the installation's default applies.</p>
      <ErrorNote error={limits.error} />
      <div className="form-grid">
        {LIMITS.map(({ key, label }) => (
          <label key={key}>
            {label}
            <input
              type="number"
              min={1}
              value={valueOf(key)}
              readOnly={!canWrite}
              placeholder={data ? `default ${data.defaults[key]}` : ''}
              onChange={(e) => setDraft((d) => ({ ...d, [key]: e.target.value }))}
            />
            {data && <span className="muted">in force: {data.limits[key]}</span>}
          </label>
        ))}
      </div>
      <ErrorNote error={error} />
      {canWrite && (
        <button type="submit" className="primary">
          Save limits
        </button>
      )}
      {saved && (
        <span role="status" className="muted">
          {' '}
          Limits saved.
        </span>
      )}
    </form>
  );
}

export function TenantsPage() {
  const session = useSession();
  const canWrite = session.can('iam.tenants.write');
  const [page, setPage] = useState(1);
  const list = useLoad(() => unwrap(api.GET('/api/v1/tenants', { params: { query: { 'page[number]': page, 'page[size]': 20 } } })), [page]);
  const [open, setOpen] = useState<string>();
  const [renaming, setRenaming] = useState<{ id: string; name: string }>();
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  const run = async (action: () => Promise<unknown>): Promise<boolean> => {
    setError(undefined);
    try {
      await action();
      list.reload();
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    if (await run(() => unwrap(api.POST('/api/v1/tenants', { body: { id: id.trim(), name: name.trim() } })))) {
      setId('');
      setName('');
    }
  };
  return (
    <>
      <PageHeader title="Tenants" />
      <p className="muted">Each tenant has its own flows, secrets, accounts and Director objects. Switch to one with the Tenant menu at the top.</p>
      <ErrorNote error={error ?? list.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Tenants table">
        <table>
          <caption className="sr-only">Tenants of this installation</caption>
          <thead>
            <tr>
              <th scope="col">Id</th>
              <th scope="col">Name</th>
              <th scope="col">Created</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((t) => (
              <tr key={t.id}>
                <td>
                  <code>{t.id}</code>
                </td>
                <td>
                  {renaming?.id === t.id ? (
                    <form
                      aria-label={`Rename ${t.id}`}
                      onSubmit={(e) => {
                        e.preventDefault();
                        void run(() => unwrap(api.PATCH('/api/v1/tenants/{id}', { params: { path: { id: t.id } }, body: { name: renaming.name.trim() } }))).then((ok) => ok && setRenaming(undefined));
                      }}
                    >
                      <label>
                        New name of {t.id}
                        <input value={renaming.name} required onChange={(e) => setRenaming({ id: t.id, name: e.target.value })} />
                      </label>
                      <button type="submit">Save name</button>
                    </form>
                  ) : (
                    t.name
                  )}
                </td>
                <td>{formatTime(t.createdAt)}</td>
                <td>
                  <button type="button" aria-expanded={open === t.id} onClick={() => setOpen(open === t.id ? undefined : t.id)}>
                    Limits<span className="sr-only"> of {t.id}</span>
                  </button>{' '}
                  {canWrite && (
                    <>
                      <button type="button" onClick={() => setRenaming({ id: t.id, name: t.name })}>
                        Rename<span className="sr-only"> {t.id}</span>
                      </button>{' '}
                      <button
                        type="button"
                        className="danger"
                        onClick={() => window.confirm(`Delete tenant ${t.id}? Only an empty tenant can be deleted.`) && void run(() => unwrap(api.DELETE('/api/v1/tenants/{id}', { params: { path: { id: t.id } } })))}
                      >
                        Delete<span className="sr-only"> tenant {t.id}</span>
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={setPage} label="Tenants" />
      {open && <TenantLimits key={open} tenant={open} canWrite={canWrite} />}
      {canWrite && (
        <form className="card" aria-labelledby="new-tenant" onSubmit={(e) => void create(e)}>
          <h2 id="new-tenant">New tenant</h2>
          <div className="form-grid">
            <label>
              Tenant id
              <input value={id} required pattern="[a-z0-9][a-z0-9\-]*" maxLength={63} onChange={(e) => setId(e.target.value)} title="lower case letters, digits and dashes" />
            </label>
            <label>
              Tenant name
              <input value={name} required maxLength={200} onChange={(e) => setName(e.target.value)} />
            </label>
          </div>
          <button type="submit" className="primary">
            Create tenant
          </button>
        </form>
      )}
    </>
  );
}
