/** Users and roles of the tenant: who holds which permissions, directly or through roles. */
import { isRestrictedPermission, PERMISSIONS } from '@contracts/permissions';
import { useState, type FormEvent } from 'react';
import { api, unwrap } from '../api/client';
import { useSession } from '../auth/session';
import { ErrorNote, formatTime, PageHeader, Pager, useLoad } from '../ui/common';

export function PermissionPicker({ value, onChange, legend, allowRestricted }: { value: string[]; onChange: (v: string[]) => void; legend: string; allowRestricted: boolean }) {
  const choices = PERMISSIONS.filter((p) => allowRestricted || !isRestrictedPermission(p));
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

type Role = { id: string; name: string; permissions: string[] };

/** Changes an account's roles, permissions and (optionally) password. */
function EditUser({ user, roles, allowRestricted, onDone }: { user: { id: string; username: string; roles: string[]; permissions: string[] }; roles: Role[]; allowRestricted: boolean; onDone: () => void }) {
  const [permissions, setPermissions] = useState(user.permissions);
  const [userRoles, setUserRoles] = useState(user.roles);
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await unwrap(api.PATCH('/api/v1/users/{id}', { params: { path: { id: user.id } }, body: { permissions, roles: userRoles, ...(password ? { password } : {}) } }));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby={`edit-${user.id}`}>
      <h3 id={`edit-${user.id}`}>Change {user.username}</h3>
      {roles.length > 0 && (
        <fieldset>
          <legend>Roles</legend>
          {roles.map((r) => (
            <label key={r.id} className="inline">
              <input type="checkbox" checked={userRoles.includes(r.id)} onChange={(e) => setUserRoles(e.target.checked ? [...userRoles, r.id] : userRoles.filter((x) => x !== r.id))} /> {r.name}
            </label>
          ))}
        </fieldset>
      )}
      <PermissionPicker legend="Permissions" value={permissions} onChange={setPermissions} allowRestricted={allowRestricted} />
      <label>
        New password (optional; ends the account's other sessions)
        <input type="password" value={password} minLength={8} autoComplete="new-password" onChange={(e) => setPassword(e.target.value)} />
      </label>
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Save {user.username}
      </button>
    </form>
  );
}

/** Changes a role's name and permissions. */
function EditRole({ role, allowRestricted, onDone }: { role: Role; allowRestricted: boolean; onDone: () => void }) {
  const [name, setName] = useState(role.name);
  const [permissions, setPermissions] = useState(role.permissions);
  const [error, setError] = useState<unknown>();
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    try {
      await unwrap(api.PATCH('/api/v1/roles/{id}', { params: { path: { id: role.id } }, body: { name, permissions } }));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="card" onSubmit={(e) => void submit(e)} aria-labelledby={`edit-role-${role.id}`}>
      <h3 id={`edit-role-${role.id}`}>Change role {role.name}</h3>
      <label>
        Name
        <input value={name} required onChange={(e) => setName(e.target.value)} />
      </label>
      <PermissionPicker legend="Permissions of the role" value={permissions} onChange={setPermissions} allowRestricted={allowRestricted} />
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Save role {role.name}
      </button>
    </form>
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
  const [editing, setEditing] = useState<string>();

  const [username, setUsername] = useState('');
  const [kind, setKind] = useState<'user' | 'service'>('user');
  const [password, setPassword] = useState('');
  const [permissions, setPermissions] = useState<string[]>([]);
  const [userRoles, setUserRoles] = useState<string[]>([]);
  const createUser = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      // A service account has no password: it acts through API tokens (the API tokens page).
      await unwrap(api.POST('/api/v1/users', { body: { username, kind, ...(kind === 'user' ? { password } : {}), permissions, roles: userRoles } }));
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
                    <button type="button" aria-expanded={editing === u.id} onClick={() => setEditing(editing === u.id ? undefined : u.id)}>
                      Change<span className="sr-only"> {u.username}</span>
                    </button>{' '}
                    {u.id !== session.me?.id && (
                      <button type="button" className="danger" onClick={() => void remove('user', u.id, u.username)}>
                        Delete<span className="sr-only"> {u.username}</span>
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
      {users.data?.data
        .filter((u) => u.id === editing)
        .map((u) => (
          <EditUser
            key={u.id}
            user={u}
            roles={roles.data ?? []}
            allowRestricted={session.isPlatformAdmin}
            onDone={() => {
              setEditing(undefined);
              users.reload();
            }}
          />
        ))}
      {canWriteUsers && (
        <form className="card" onSubmit={(e) => void createUser(e)} aria-labelledby="new-user">
          <h3 id="new-user">New user</h3>
          <label>
            Username
            <input value={username} required autoComplete="off" onChange={(e) => setUsername(e.target.value)} />
          </label>
          <label>
            Kind
            <select value={kind} onChange={(e) => setKind(e.target.value as 'user' | 'service')}>
              <option value="user">user — signs in with a password</option>
              <option value="service">service — acts through API tokens only</option>
            </select>
          </label>
          {kind === 'user' && (
            <label>
              Password (at least 8 characters)
              <input type="password" value={password} required minLength={8} autoComplete="new-password" onChange={(e) => setPassword(e.target.value)} />
            </label>
          )}
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
                    <button type="button" aria-expanded={editing === r.id} onClick={() => setEditing(editing === r.id ? undefined : r.id)}>
                      Change<span className="sr-only"> role {r.name}</span>
                    </button>{' '}
                    <button type="button" className="danger" onClick={() => void remove('role', r.id, r.name)}>
                      Delete<span className="sr-only"> role {r.name}</span>
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
      {roles.data
        ?.filter((r) => r.id === editing)
        .map((r) => (
          <EditRole
            key={r.id}
            role={r}
            allowRestricted={session.isPlatformAdmin}
            onDone={() => {
              setEditing(undefined);
              roles.reload();
              users.reload();
            }}
          />
        ))}
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
