/**
 * Secrets: listed with their sensitive fields masked (the hub never sends them here), created
 * and rotated through forms generated from the shared zod contracts (contracts/secrets.ts), which
 * also check the value before it is sent.
 */
import { MASK, SECRET_TYPES, SECRET_VALUE_SCHEMAS, SENSITIVE_FIELDS, type SecretType } from '@contracts/secrets';
import { useMemo, useState, type FormEvent } from 'react';
import { z } from 'zod';
import { api, ApiError, unwrap } from '../api/client';
import type { paths } from '../api/schema';
import { useSession } from '../auth/session';
import { NodeForm } from '../editor/NodeForm';
import { ErrorNote, formatTime, JsonBlock, PageHeader, Pager, useLoad } from '../ui/common';

type NewSecretBody = paths['/api/v1/secrets']['post']['requestBody']['content']['application/json'];

/** The JSON schema of a secret type's value, from its zod contract. */
export function valueSchemaOf(type: SecretType): Record<string, unknown> {
  return z.toJSONSchema(SECRET_VALUE_SCHEMAS[type], { unrepresentable: 'any', io: 'input' }) as Record<string, unknown>;
}

/** Only the sensitive fields of a type: what a rotation replaces. */
function rotationSchemaOf(type: SecretType): Record<string, unknown> {
  const full = valueSchemaOf(type);
  if (type === 'mixed') return full;
  const props = (full.properties ?? {}) as Record<string, unknown>;
  const keep = SENSITIVE_FIELDS[type];
  return { type: 'object', properties: Object.fromEntries(Object.entries(props).filter(([k]) => keep.includes(k))), additionalProperties: false };
}

function zodProblems(err: z.ZodError): string[] {
  return err.issues.map((i) => `${i.path.join('.') || 'value'}: ${i.message}`);
}

function CreateSecret({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [type, setType] = useState<SecretType>('basic');
  const [value, setValue] = useState<Record<string, unknown>>({});
  const [error, setError] = useState<unknown>();
  const schema = useMemo(() => valueSchemaOf(type), [type]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    const checked = SECRET_VALUE_SCHEMAS[type].safeParse(value);
    if (!checked.success) return setError(new ApiError(400, 'VALIDATION_FAILED', 'check the value', { problems: zodProblems(checked.error) }));
    try {
      // The checked value belongs to `type`; TypeScript cannot tie the two together across the union.
      const body = { name, type, value: checked.data } as NewSecretBody;
      await unwrap(api.POST('/api/v1/secrets', { body }));
      setName('');
      setValue({});
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)} className="card" aria-labelledby="new-secret">
      <h2 id="new-secret">New secret</h2>
      <label>
        Name
        <input value={name} required onChange={(e) => setName(e.target.value)} />
      </label>
      <label>
        Type
        <select value={type} onChange={(e) => (setType(e.target.value as SecretType), setValue({}))}>
          {SECRET_TYPES.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </label>
      <NodeForm key={type} idPrefix="new-secret" schema={schema} value={value} onChange={setValue} />
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Create secret
      </button>
    </form>
  );
}

function RotateSecret({ secret, onDone }: { secret: { id: string; name: string; type: SecretType }; onDone: () => void }) {
  const [value, setValue] = useState<Record<string, unknown>>({});
  const [error, setError] = useState<unknown>();
  const schema = useMemo(() => rotationSchemaOf(secret.type), [secret.type]);
  const submit = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      await unwrap(api.PATCH('/api/v1/secrets/{id}', { params: { path: { id: secret.id } }, body: { value } }));
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form onSubmit={(e) => void submit(e)} className="card" aria-labelledby={`rotate-${secret.id}`}>
      <h3 id={`rotate-${secret.id}`}>Rotate {secret.name}</h3>
      <p className="muted">Fields left empty keep their stored value.</p>
      <NodeForm idPrefix={`rotate-${secret.id}`} schema={schema} value={value} onChange={setValue} />
      <ErrorNote error={error} />
      <button type="submit" className="primary">
        Save new value
      </button>
    </form>
  );
}

export function SecretsPage() {
  const session = useSession();
  const [page, setPage] = useState(1);
  const [rotating, setRotating] = useState<string>();
  const [error, setError] = useState<unknown>();
  const list = useLoad(() => unwrap(api.GET('/api/v1/secrets', { params: { query: { 'page[number]': page, 'page[size]': 20, sort: 'name' } } })), [page]);
  const canWrite = session.can('secrets.write');
  const canReveal = session.can('secrets.readRaw');
  // Raw values are read only on request (each read is audited) and forgotten when hidden.
  const [revealed, setRevealed] = useState<Record<string, Record<string, unknown>>>({});
  const [notice, setNotice] = useState<string>();
  const reveal = async (id: string): Promise<void> => {
    setError(undefined);
    if (revealed[id]) return setRevealed(({ [id]: _gone, ...rest }) => rest);
    try {
      const r = await unwrap(api.GET('/api/v1/secrets/{id}/raw', { params: { path: { id } } }));
      setRevealed((v) => ({ ...v, [id]: r.data.value }));
    } catch (err) {
      setError(err);
    }
  };
  const refresh = async (id: string, name: string): Promise<void> => {
    setError(undefined);
    setNotice(undefined);
    try {
      await unwrap(api.POST('/api/v1/secrets/{id}/refresh', { params: { path: { id } } }));
      setNotice(`${name}: the grant answered; the token is refreshed.`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (id: string, name: string): Promise<void> => {
    if (!window.confirm(`Delete secret ${name}? Steps using it will fail.`)) return;
    try {
      await unwrap(api.DELETE('/api/v1/secrets/{id}', { params: { path: { id } } }));
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <PageHeader title="Secrets" />
      <ErrorNote error={list.error ?? error} />
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Secrets, sensitive fields masked</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">Value</th>
              <th scope="col">Updated</th>
              {(canWrite || canReveal) && <th scope="col">Actions</th>}
            </tr>
          </thead>
          <tbody>
            {list.data?.data.map((s) => (
              <tr key={s.id}>
                <td>{s.name}</td>
                <td>{s.type}</td>
                <td>
                  <code>
                    {Object.entries(s.value)
                      .map(([k, v]) => `${k}: ${v === MASK ? '••••••' : String(v)}`)
                      .join(', ')}
                  </code>
                  {s.lastError && <div className="error">{s.lastError}</div>}
                  {revealed[s.id] && <JsonBlock value={revealed[s.id]} label={`Value of ${s.name}`} />}
                </td>
                <td>{formatTime(s.updatedAt)}</td>
                {(canWrite || canReveal) && (
                  <td>
                    {canReveal && (
                      <>
                        <button type="button" aria-pressed={Boolean(revealed[s.id])} onClick={() => void reveal(s.id)}>
                          {revealed[s.id] ? 'Hide' : 'Reveal'}
                          <span className="sr-only"> {s.name}</span>
                        </button>{' '}
                      </>
                    )}
                    {canWrite && s.type === 'oauth2' && (
                      <>
                        <button type="button" onClick={() => void refresh(s.id, s.name)}>
                          Refresh<span className="sr-only"> {s.name}</span>
                        </button>{' '}
                      </>
                    )}
                    {canWrite && (
                      <>
                        <button type="button" onClick={() => setRotating(rotating === s.id ? undefined : s.id)} aria-expanded={rotating === s.id}>
                          Rotate
                        </button>{' '}
                        <button type="button" className="danger" onClick={() => void remove(s.id, s.name)}>
                          Delete
                        </button>
                      </>
                    )}
                  </td>
                )}
              </tr>
            ))}
            {list.data?.data.length === 0 && (
              <tr>
                <td colSpan={5}>No secrets yet.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      <Pager meta={list.data?.meta} onPage={setPage} label="Secrets" />
      {rotating &&
        list.data?.data
          .filter((s) => s.id === rotating)
          .map((s) => (
            <RotateSecret
              key={s.id}
              secret={s}
              onDone={() => {
                setRotating(undefined);
                list.reload();
              }}
            />
          ))}
      {canWrite && <CreateSecret onCreated={list.reload} />}
    </>
  );
}
