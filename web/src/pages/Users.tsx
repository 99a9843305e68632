/** Users and roles of the tenant: who holds which permissions, directly or through roles. */
import { PERMISSIONS } from '@contracts/permissions';
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import { useSession } from '../auth/session';
import { ErrorNote, formatTime, PageHeader, Pager, useLoad } from '../ui/common';

function PermissionPicker({ value, onChange, legend, allowRestricted }: { value: string[]; onChange: (v: string[]) => void; legend: string; allowRestricted: boolean }) {
  const choices = PERMISSIONS.filter((p) => allowRestricted || (p !== 'all' && !p.startsWith('iam.')));
  return (
    <fieldset className="permissions">
      <legend>{legend}</legend>
      {choices.map((p) => (
        <label key={p} className="inline">
          <input type="checkbox" checked={value.includes(p)} onChange={(e) => onChange(e.target.checked ? [...value, p] : value.filter((x) => x !== p))} /> {p}
        </label>
      ))}
    </fieldset>
  );
}

export function UsersPage() {
  const session = useSession();
  const [page, setPage] = useState(1);
  const users = useLoad(() => unwrap(api.GET('/api/v1/users', { params: { query: { 'page[number]': page, 'page[size]': 20, sort: 'username' } } })), [page]);
  const roles = useLoad(
    () => (session.can('tenant.roles.read') ? unwrap(api.GET('/api/v1/roles', { params: { query: { 'page[size]': 100, sort: 'name' } } })).then((r) => r.data) : Promise.resolve([])),
    [],
  );
  const roleName = (id: string): string => roles.data?.find((r) => r.id === id)?.name ?? id;
  const [error, setError] = useState<unknown>();

  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [permissions, setPermissions] = useState<string[]>([]);
  const [userRoles, setUserRoles] = useState<string[]>([]);
  const createUser = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      await unwrap(api.POST('/api/v1/users', { body: { username, password, kind: 'user', permissions, roles: userRoles } }));
      setUsername('');
      setPassword('');
      setPermissions([]);
      setUserRoles([]);
      users.reload();
    } catch (err) {
      setError(err);
    }
  };

  const [roleNameInput, setRoleNameInput] = useState('');
  const [rolePermissions, setRolePermissions] = useState<string[]>([]);
  const createRole = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      await unwrap(api.POST('/api/v1/roles', { body: { name: roleNameInput, permissions: rolePermissions } }));
      setRoleNameInput('');
      setRolePermissions([]);
      roles.reload();
    } catch (err) {
      setError(err);
    }
  };

  const remove = async (what: 'user' | 'role', id: string, name: string): Promise<void> => {
    if (!window.confirm(`Delete ${what} ${name}?`)) return;
    try {
      if (what === 'user') await unwrap(api.DELETE('/api/v1/users/{id}', { params: { path: { id } } }));
      else await unwrap(api.DELETE('/api/v1/roles/{id}', { params: { path: { id } } }));
      users.reload();
      roles.reload();
    } catch (err) {
      setError(err);
    }
  };

  const canWriteUsers = session.can('tenant.users.write');
  const canWriteRoles = session.can('tenant.roles.write');
  return (
    <>
      <PageHeader title="Users and roles" />
      <ErrorNote error={error ?? users.error} />
      <h2>Users</h2>
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Accounts of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Username</th>
              <th scope="col">Kind</th>
              <th scope="col">Roles</th>
              <th scope="col">Permissions</th>
              <th scope="col">Created</th>
              {canWriteUsers && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {users.data?.data.map((u) => (
              <tr key={u.id}>
                <td>{u.username}</td>
                <td>{u.kind}</td>
                <td>{u.roles.map(roleName).join(', ') || '—'}</td>
                <td>{u.permissions.join(', ') || '—'}</td>
                <td>{formatTime(u.createdAt)}</td>
                {canWriteUsers && (
                  <td>
                    {u.id !== session.me?.id && (
                      <button type="button" className="danger" onClick={() => void remove('user', u.id, u.username)}>
                        Delete
                      </button>
                    )}
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <Pager meta={users.data?.meta} onPage={setPage} label="Users" />
      {canWriteUsers && (
        <form className="card" onSubmit={(e) => void createUser(e)} aria-labelledby="new-user">
          <h3 id="new-user">New user</h3>
          <label>
            Username
            <input value={username} required autoComplete="off" onChange={(e) => setUsername(e.target.value)} />
          </label>
          <label>
            Password (at least 8 characters)
            <input type="password" value={password} required minLength={8} autoComplete="new-password" onChange={(e) => setPassword(e.target.value)} />
          </label>
          {(roles.data?.length ?? 0) > 0 && (
            <fieldset>
              <legend>Roles</legend>
              {roles.data!.map((r) => (
                <label key={r.id} className="inline">
                  <input type="checkbox" checked={userRoles.includes(r.id)} onChange={(e) => setUserRoles(e.target.checked ? [...userRoles, r.id] : userRoles.filter((x) => x !== r.id))} /> {r.name}
                </label>
              ))}
            </fieldset>
          )}
          <PermissionPicker legend="Permissions" value={permissions} onChange={setPermissions} allowRestricted={session.isPlatformAdmin} />
          <button type="submit" className="primary">
            Create user
          </button>
        </form>
      )}
      <h2>Roles</h2>
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Roles of this tenant</caption>
          <thead>
            <tr>
              <th scope="col">Role</th>
              <th scope="col">Permissions</th>
              {canWriteRoles && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {roles.data?.map((r) => (
              <tr key={r.id}>
                <td>{r.name}</td>
                <td>{r.permissions.join(', ') || '—'}</td>
                {canWriteRoles && (
                  <td>
                    <button type="button" className="danger" onClick={() => void remove('role', r.id, r.name)}>
                      Delete
                    </button>
                  </td>
                )}
              </tr>
            ))}
            {roles.data?.length === 0 && (
              <tr>
                <td colSpan={3}>No roles yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {canWriteRoles && (
        <form className="card" onSubmit={(e) => void createRole(e)} aria-labelledby="new-role">
          <h3 id="new-role">New role</h3>
          <label>
            Name
            <input value={roleNameInput} required onChange={(e) => setRoleNameInput(e.target.value)} />
          </label>
          <PermissionPicker legend="Permissions of the role" value={rolePermissions} onChange={setRolePermissions} allowRestricted={session.isPlatformAdmin} />
          <button type="submit" className="primary">
            Create role
          </button>
        </form>
      )}
    </>
  );
}
