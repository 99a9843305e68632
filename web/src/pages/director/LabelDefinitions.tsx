/**
 * The tenant's scenarios (the enum of the `scenarios` label definition) and its label
 * definitions: a key with an optional JSON Schema every value under the key must satisfy.
 */
import { useState, type FormEvent } from 'react';
import { gql, M, Q, scenariosOf, schemaObject, withScenarios, type LabelDefinition } from '../../api/director';
import { useSession } from '../../auth/session';
import { ErrorNote, PageHeader, useLoad } from '../../ui/common';
import { ApiError } from '../../api/client';

/** The schema typed into a field: empty is none; otherwise it must be a JSON object. */
function parseSchema(text: string): unknown {
  const t = text.trim();
  if (!t) return null;
  let value: unknown;
  try {
    value = JSON.parse(t);
  } catch (err) {
    throw new ApiError(400, 'VALIDATION_FAILED', `schema: not JSON: ${(err as Error).message}`);
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) throw new ApiError(400, 'VALIDATION_FAILED', 'schema: must be a JSON object (a JSON Schema)');
  return value;
}

function Scenarios({ definition, canWrite, onChanged }: { definition: LabelDefinition | undefined; canWrite: boolean; onChanged: () => void }) {
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>();
  const scenarios = scenariosOf(definition);
  const save = async (next: string[]): Promise<boolean> => {
    setError(undefined);
    try {
      await gql(M.updateLabelDefinition, { key: 'scenarios', schema: withScenarios(definition, next) });
      onChanged();
      return true;
    } catch (err) {
      setError(err);
      return false;
    }
  };
  const add = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    const n = name.trim();
    if (scenarios.includes(n)) return setError(new ApiError(409, 'CONFLICT', `scenario ${n} already exists`));
    if (await save([...scenarios, n])) setName('');
  };
  return (
    <section aria-labelledby="scenarios-def">
      <h2 id="scenarios-def">Scenarios</h2>
      <p className="muted">Applications and runtimes in the same scenario see each other. DEFAULT always exists; a scenario still in use cannot be removed.</p>
      <ul className="chips">
        {scenarios.map((s) => (
          <li key={s}>
            <code>{s}</code>{' '}
            {canWrite && s !== 'DEFAULT' && (
              <button type="button" className="danger small" aria-label={`Remove scenario ${s}`} onClick={() => void save(scenarios.filter((x) => x !== s))}>
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {canWrite && (
        <form className="filters" aria-label="Add a scenario" onSubmit={(e) => void add(e)}>
          <label>
            New scenario
            <input value={name} required onChange={(e) => setName(e.target.value)} />
          </label>
          <button type="submit">Add scenario</button>
        </form>
      )}
      <ErrorNote error={error} />
    </section>
  );
}

function DefinitionRow({ def, canWrite, onChanged }: { def: LabelDefinition; canWrite: boolean; onChanged: () => void }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(() => (def.schema == null ? '' : JSON.stringify(schemaObject(def.schema) ?? def.schema, null, 2)));
  const [withLabels, setWithLabels] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async (action: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    try {
      await action();
      setEditing(false);
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <tr>
      <td>
        <code>{def.key}</code>
      </td>
      <td>
        {editing ? (
          <form
            aria-label={`Schema of ${def.key}`}
            onSubmit={(e) => {
              e.preventDefault();
              void run(() => gql(M.updateLabelDefinition, { key: def.key, schema: parseSchema(text) }));
            }}
          >
            <label>
              JSON Schema of {def.key}
              <textarea rows={6} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} />
            </label>
            <button type="submit" className="primary">
              Save schema
            </button>{' '}
            <button type="button" onClick={() => setEditing(false)}>
              Cancel
            </button>
          </form>
        ) : def.schema == null ? (
          <span className="muted">any value</span>
        ) : (
          <pre className="json" tabIndex={0} aria-label={`Schema of ${def.key}`}>
            {JSON.stringify(schemaObject(def.schema) ?? def.schema, null, 2)}
          </pre>
        )}
        <ErrorNote error={error} />
      </td>
      {canWrite && (
        <td>
          {!editing && (
            <button type="button" onClick={() => setEditing(true)} aria-label={`Edit schema of ${def.key}`}>
              Edit schema
            </button>
          )}
          {def.key !== 'scenarios' && (
            <>
              <label className="inline">
                <input type="checkbox" checked={withLabels} onChange={(e) => setWithLabels(e.target.checked)} />
                with its labels
              </label>
              <button
                type="button"
                className="danger"
                aria-label={`Delete label definition ${def.key}`}
                onClick={() => {
                  if (window.confirm(`Delete the label definition ${def.key}${withLabels ? ' and every label under it' : ''}?`)) void run(() => gql(M.deleteLabelDefinition, { key: def.key, deleteRelatedLabels: withLabels }));
                }}
              >
                Delete
              </button>
            </>
          )}
        </td>
      )}
    </tr>
  );
}

/** How specs are checked on write, for this tenant: LENIENT stores a refused spec with its problems, STRICT refuses it. */
function SpecValidation() {
  const session = useSession();
  const settings = useLoad(() => gql(Q.directorSettings, {}).then((r) => r.directorSettings), []);
  const [error, setError] = useState<unknown>();
  const canWrite = session.can('tenant.all');
  const set = async (value: string): Promise<void> => {
    setError(undefined);
    try {
      await gql(M.setDirectorSettings, { specValidation: value === '' ? null : (value as 'LENIENT' | 'STRICT') });
      settings.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="spec-validation">
      <h2 id="spec-validation">Spec validation</h2>
      <p className="muted">LENIENT stores an API or event spec its parser refuses, with the problems shown; STRICT refuses it.</p>
      <ErrorNote error={settings.error ?? error} />
      {settings.data && (
        <form className="filters" aria-label="Spec validation" onSubmit={(e) => e.preventDefault()}>
          <label>
            Specs are checked
            <select value={settings.data.specValidationOverride ?? ''} disabled={!canWrite} onChange={(e) => void set(e.target.value)}>
              <option value="">as the installation says ({settings.data.specValidationOverride ? 'default' : settings.data.specValidation})</option>
              <option value="LENIENT">LENIENT</option>
              <option value="STRICT">STRICT</option>
            </select>
          </label>
        </form>
      )}
    </section>
  );
}

export function LabelDefinitionsPage() {
  const session = useSession();
  const canWrite = session.can('label_definition:write');
  const defs = useLoad(() => gql(Q.labelDefinitions, {}).then((r) => r.labelDefinitions), []);
  const [key, setKey] = useState('');
  const [schema, setSchema] = useState('');
  const [error, setError] = useState<unknown>();
  const create = async (e: FormEvent): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      await gql(M.createLabelDefinition, { key: key.trim(), schema: parseSchema(schema) });
      setKey('');
      setSchema('');
      defs.reload();
    } catch (err) {
      setError(err);
    }
  };
  const scenarios = defs.data?.find((d) => d.key === 'scenarios');
  return (
    <>
      <PageHeader title="Labels and scenarios" />
      <ErrorNote error={defs.error} />
      {defs.data && <Scenarios key={JSON.stringify(scenarios?.schema)} definition={scenarios} canWrite={canWrite} onChanged={defs.reload} />}
      <section aria-labelledby="label-defs">
        <h2 id="label-defs">Label definitions</h2>
        <p className="muted">A label key with an optional JSON Schema; values set under the key must satisfy it. Setting a label with a new key defines the key without a schema.</p>
        <div className="table-wrap" tabIndex={0} role="region" aria-label="Label definitions table">
          <table>
            <caption className="sr-only">Label definitions</caption>
            <thead>
              <tr>
                <th scope="col">Key</th>
                <th scope="col">Schema</th>
                {canWrite && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {defs.data?.map((d) => <DefinitionRow key={`${d.key}:${JSON.stringify(d.schema)}`} def={d} canWrite={canWrite} onChanged={defs.reload} />)}
            </tbody>
          </table>
        </div>
        {canWrite && (
          <form className="card" aria-labelledby="new-label-def" onSubmit={(e) => void create(e)}>
            <h3 id="new-label-def">New label definition</h3>
            <label>
              Key
              <input value={key} required onChange={(e) => setKey(e.target.value)} />
            </label>
            <label>
              JSON Schema (optional)
              <textarea rows={5} value={schema} onChange={(e) => setSchema(e.target.value)} placeholder='{"type": "string", "enum": ["dev", "prod"]}' spellCheck={false} />
            </label>
            <ErrorNote error={error} />
            <button type="submit" className="primary">
              Create label definition
            </button>
          </form>
        )}
      </section>
      <SpecValidation />
    </>
  );
}
