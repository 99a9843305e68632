/**
 * API tokens of the tenant: the live ones (never their values), issue a persistent token for an
 * account — a service account usually, for CI, the CLI (`PLEXUS_TOKEN`) or an integration — shown
 * once with a copy button, and revoke.
 */
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import { useSession } from '../auth/session';
import { CopyButton, ErrorNote, formatTime, PageHeader, Pager, useLoad } from '../ui/common';
import { PermissionPicker } from './Users';

function IssueToken({ onIssued }: { onIssued: () => void }) {
  const session = useSession();
  const accounts = useLoad(
    () => (session.can('tenant.users.read') ? unwrap(api.GET('/api/v1/users', { params: { query: { 'page[size]': 100, sort: 'username' } } })).then((r) => r.data) : Promise.resolve([])),
    [],
  );
  const [accountId, setAccountId] = useState('');
  const [description, setDescription] = useState('');
  const [expires, setExpires] = useState('');
  const [narrow, setNarrow] = useState(false);
  const [permissions, setPermissions] = useState<string[]>([]);
  const [issued, setIssued] = useState<{ token: string; username: string; expiresAt: string | null }>();
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    setIssued(undefined);
    try {
      const body = {
        ...(accountId ? { accountId } : {}),
        ...(description.trim() ? { description: description.trim() } : {}),
        // A date field gives a day: the token lasts until the end of it (UTC).
        ...(expires ? { expiresAt: new Date(`${expires}T23:59:59.000Z`).toISOString() } : {}),
        ...(narrow ? { permissions } : {}),
      };
      const r = await unwrap(api.POST('/api/v1/tokens', { body }));
      setIssued({ token: r.data.token, username: r.data.username, expiresAt: r.data.expiresAt });
      setDescription('');
      onIssued();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" aria-labelledby="issue-token" onSubmit={(e) => void submit(e)}>
      <h2 id="issue-token">Issue a token</h2>
      <div className="form-grid">
        <label>
          Account
          <select value={accountId} onChange={(e) => setAccountId(e.target.value)}>
            <option value="">myself ({session.me?.username})</option>
            {accounts.data
              ?.filter((a) => a.username !== session.me?.username)
              .map((a) => (
                <option key={a.id} value={a.id}>
                  {a.username} ({a.kind})
                </option>
              ))}
          </select>
        </label>
        <label>
          Description
          <input value={description} onChange={(e) => setDescription(e.target.value)} placeholder="what uses it, e.g. CI deploy" />
        </label>
        <label>
          Expires at the end of
          <input type="date" value={expires} onChange={(e) => setExpires(e.target.value)} />
        </label>
      </div>
      <label className="inline">
        <input type="checkbox" checked={narrow} onChange={(e) => setNarrow(e.target.checked)} />
        Only some of the account's permissions
      </label>
      {narrow && <PermissionPicker legend="The token's permissions" value={permissions} onChange={setPermissions} allowRestricted={session.isPlatformAdmin} />}
      <ErrorNote error={error} />
      {issued && (
        <div className="notice" role="status">
          <p>
            A token for {issued.username}
            {issued.expiresAt ? `, valid until ${formatTime(issued.expiresAt)}` : ', valid until revoked'}. It is shown this once:
          </p>
          <p>
            <code aria-label="New token">{issued.token}</code> <CopyButton text={issued.token} label="Copy the token" />
          </p>
        </div>
      )}
      <button type="submit" className="primary">
        Issue token
      </button>
    </form>
  );
}

export function TokensPage() {
  const session = useSession();
  const [page, setPage] = useState(1);
  const [kind, setKind] = useState<'persistent' | 'session' | ''>('persistent');
  const list = useLoad(
    () => unwrap(api.GET('/api/v1/tokens', { params: { query: { 'page[number]': page, 'page[size]': 20, ...(kind ? { 'filter[kind]': kind } : {}) } } })),
    [page, kind],
  );
  const [error, setError] = useState<unknown>();
  const canWrite = session.can('tenant.tokens.write');
  const revoke = async (id: string, who: string): Promise<void> => {
    if (!window.confirm(`Revoke this token of ${who}? Whatever uses it is refused from now on.`)) return;
    setError(undefined);
    try {
      await unwrap(api.DELETE('/api/v1/tokens/{id}', { params: { path: { id } } }));
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <PageHeader title="API tokens" />
      <p className="muted">Bearer tokens for scripts, CI and integrations (the CLI reads one from PLEXUS_TOKEN). Values are shown once, when issued.</p>
      <form className="filters" role="search" aria-label="Filter tokens" onSubmit={(e) => e.preventDefault()}>
        <label>
          Kind
          <select value={kind} onChange={(e) => (setPage(1), setKind(e.target.value as typeof kind))}>
            <option value="persistent">persistent</option>
            <option value="session">session (sign-ins)</option>
            <option value="">any</option>
          </select>
        </label>
      </form>
      <ErrorNote error={error ?? list.error} />
      <div className="table-wrap" tabIndex={0} role="region" aria-label="Tokens table">
        <table>
          <caption className="sr-only">Live tokens of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Account</th>
              <th scope="col">Kind</th>
              <th scope="col">Description</th>
              <th scope="col">Permissions</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              {canWrite && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((t) => (
              <tr key={t.id}>
                <td>{t.username}</td>
                <td>{t.kind}</td>
                <td>{t.description ?? '—'}</td>
                <td>{t.permissions ? t.permissions.join(', ') || 'none' : "the account's"}</td>
                <td>{t.expiresAt ? formatTime(t.expiresAt) : 'never'}</td>
                <td>{formatTime(t.lastUsedAt)}</td>
                {canWrite && (
                  <td>
                    <button type="button" className="danger" onClick={() => void revoke(t.id, t.username)}>
                      Revoke<span className="sr-only"> token {t.description ?? t.id} of {t.username}</span>
                    </button>
                  </td>
                )}
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={7}>No tokens.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={setPage} label="Tokens" />
      {canWrite && <IssueToken onIssued={list.reload} />}
    </>
  );
}
