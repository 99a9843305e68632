/**
 * Create and edit a flow as a graph: steps from the component catalogue on a canvas
 * (@xyflow/react), edges between them, each step's fields in a form generated from its
 * component's schema, edge conditions and mappers tried on a sample message, the API's
 * validation problems on the step they concern; start / stop with the live status, versions
 * with a diff, the webhook URL.
 */
import { applyEdgeChanges, applyNodeChanges, Background, Controls, Handle, MarkerType, Position, ReactFlow, ReactFlowProvider, useReactFlow, type EdgeChange, type NodeChange, type NodeProps } from '@xyflow/react';
import { useCallback, useEffect, useMemo, useState, type FormEvent } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { api, ApiError, unwrap } from '../api/client';
import { watchFlows } from '../api/live';
import type { paths } from '../api/schema';
import { useSession } from '../auth/session';
import {
  addStep,
  connect,
  isStep,
  localProblems,
  placeProblems,
  placeStartFailure,
  positionsOf,
  removeEdges,
  removeNodes,
  toCanvas,
  toGraph,
  TRIGGER_ID,
  updateEdge,
  updateStep,
  withProblems,
  type Canvas,
  type CanvasEdge,
  type CanvasNode,
  type Positions,
  type StepNode,
  type TriggerKind,
  type TriggerNode,
} from '../editor/graph';
import { JsonataField } from '../editor/JsonataField';
import { NodeForm } from '../editor/NodeForm';
import { CopyButton, ErrorNote, PageHeader, StatusBadge, useLoad } from '../ui/common';
import { Versions } from './FlowVersions';

type Flow = paths['/api/v1/flows/{id}']['get']['responses']['200']['content']['application/json']['data'];
type Component = paths['/api/v1/components']['get']['responses']['200']['content']['application/json']['data'][number];
type FunctionView = Component['actions'][string];

interface WebhookDraft {
  auth: 'none' | 'hmac' | 'bearer';
  secret: string;
  respond: 'async' | 'sync';
  timeoutMs: number;
}

interface Draft {
  name: string;
  description: string;
  trigger: TriggerKind;
  cron: string;
  timezone: string;
  webhooks: WebhookDraft;
}

const EMPTY_DRAFT: Draft = { name: '', description: '', trigger: 'webhook', cron: '', timezone: '', webhooks: { auth: 'none', secret: '', respond: 'async', timeoutMs: 30_000 } };
const SAMPLE = '{\n  "id": "A-1",\n  "qty": 3,\n  "price": 50\n}';

function draftOf(flow: Flow): Draft {
  const hooks = (flow.flowSettings?.webhooks ?? {}) as Partial<WebhookDraft>;
  return {
    name: flow.name,
    description: flow.description ?? '',
    trigger: flow.cron ? 'schedule' : 'webhook',
    cron: flow.cron ?? '',
    timezone: flow.timezone ?? '',
    webhooks: { auth: hooks.auth ?? 'none', secret: hooks.secret ?? '', respond: hooks.respond ?? 'async', timeoutMs: hooks.timeoutMs ?? 30_000 },
  };
}

function keptPositions(flow: Flow): Positions {
  const cockpit = flow.flowSettings?.cockpit as { positions?: Positions } | undefined;
  return cockpit?.positions ?? {};
}

function functionOf(catalogue: Component[] | undefined, componentId: string, fn: string): FunctionView | undefined {
  const c = catalogue?.find((x) => x.id === componentId);
  return c?.actions[fn] ?? c?.triggers[fn];
}

// ---------------------------------------------------------------- canvas nodes

function StepNodeView({ data, selected }: NodeProps<StepNode>) {
  const step = data.step;
  return (
    <div className={`node step${selected ? ' selected' : ''}${data.problems.length ? ' has-problems' : ''}`}>
      <Handle type="target" position={Position.Left} />
      <strong>{step.name || step.id}</strong>
      <span className="muted">
        {step.componentId} / {step.function}
      </span>
      {data.problems.length > 0 && (
        <span className="problem-count" title={data.problems.join('\n')}>
          {data.problems.length} problem{data.problems.length > 1 ? 's' : ''}
        </span>
      )}
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

function TriggerNodeView({ data, selected }: NodeProps<TriggerNode>) {
  return (
    <div className={`node trigger${selected ? ' selected' : ''}`}>
      <strong>{data.kind === 'webhook' ? 'Webhook' : 'Schedule'}</strong>
      <span className="muted">trigger</span>
      <Handle type="source" position={Position.Right} />
    </div>
  );
}

const NODE_TYPES = { step: StepNodeView, trigger: TriggerNodeView };
const EDGE_OPTIONS = { markerEnd: { type: MarkerType.ArrowClosed }, style: { strokeWidth: 2 } };

/** Keeps every node in view when steps are added or removed (a new step may land off-screen). */
function FitOnCountChange({ count }: { count: number }) {
  const flow = useReactFlow();
  useEffect(() => {
    const t = setTimeout(() => void flow.fitView({ maxZoom: 1, duration: 0 }), 0);
    return () => clearTimeout(t);
  }, [count, flow]);
  return null;
}

// ---------------------------------------------------------------- inspectors

function StepInspector(props: {
  node: StepNode;
  fn: FunctionView | undefined;
  secrets: Array<{ id: string; name: string }>;
  readonly: boolean;
  onChange: (c: Canvas) => void;
  canvas: Canvas;
}) {
  const { node, fn, secrets, readonly, canvas, onChange } = props;
  const step = node.data.step;
  return (
    <section aria-labelledby="inspector-title">
      <h2 id="inspector-title">Step {step.id}</h2>
      <p className="muted">
        {step.componentId} / {step.function}
        {fn?.description ? ` — ${fn.description}` : ''}
      </p>
      {node.data.problems.length > 0 && (
        <div role="alert" className="error">
          <ul>
            {node.data.problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </div>
      )}
      <label>
        Name
        <input value={step.name ?? ''} readOnly={readonly} onChange={(e) => onChange(updateStep(canvas, step.id, { name: e.target.value || undefined }))} />
      </label>
      <label>
        Credential
        <select value={step.credentialsId ?? ''} disabled={readonly} onChange={(e) => onChange(updateStep(canvas, step.id, { credentialsId: e.target.value || undefined }))}>
          <option value="">none</option>
          {secrets.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
      </label>
      <h3>Fields</h3>
      {fn ? (
        <NodeForm
          key={step.id}
          idPrefix={`step-${step.id}`}
          schema={fn.fields}
          value={step.fields ?? {}}
          readonly={readonly}
          onChange={(fields) => onChange(updateStep(canvas, step.id, { fields }))}
        />
      ) : (
        <p className="error">Unknown component function: the catalogue has no {step.componentId} / {step.function}.</p>
      )}
      {!readonly && (
        <button type="button" className="danger" onClick={() => onChange(removeNodes(canvas, [step.id]))}>
          Remove step {step.id}
        </button>
      )}
    </section>
  );
}

function EdgeInspector({ edge, canvas, onChange, readonly }: { edge: CanvasEdge; canvas: Canvas; onChange: (c: Canvas) => void; readonly: boolean }) {
  const [sample, setSample] = useState(SAMPLE);
  const fromTrigger = edge.source === TRIGGER_ID;
  return (
    <section aria-labelledby="inspector-title">
      <h2 id="inspector-title">
        Edge {edge.source} → {edge.target}
      </h2>
      {fromTrigger ? (
        <p>Every message the trigger receives goes to {edge.target}, the flow’s first step.</p>
      ) : (
        <>
          <label>
            Sample message body (JSON)
            <textarea rows={5} value={sample} onChange={(e) => setSample(e.target.value)} spellCheck={false} />
          </label>
          <JsonataField
            label="Condition (JSONata)"
            hint="The message goes along this edge only when the condition is true."
            kind="condition"
            value={edge.data?.condition ?? ''}
            sample={sample}
            readonly={readonly}
            onChange={(condition) => onChange(updateEdge(canvas, edge.id, { condition }))}
          />
          <JsonataField
            label="Mapper (JSONata)"
            hint="Its result is the body the next step receives."
            kind="mapper"
            value={edge.data?.mapper ?? ''}
            sample={sample}
            readonly={readonly}
            onChange={(mapper) => onChange(updateEdge(canvas, edge.id, { mapper }))}
          />
        </>
      )}
      {!readonly && (
        <button type="button" className="danger" onClick={() => onChange(removeEdges(canvas, [edge.id]))}>
          Remove edge
        </button>
      )}
    </section>
  );
}

function TriggerInspector({ draft, setDraft, readonly }: { draft: Draft; setDraft: (d: Draft) => void; readonly: boolean }) {
  const hooks = draft.webhooks;
  const setHooks = (h: Partial<WebhookDraft>): void => setDraft({ ...draft, webhooks: { ...hooks, ...h } });
  return (
    <section aria-labelledby="inspector-title">
      <h2 id="inspector-title">Trigger</h2>
      <fieldset disabled={readonly}>
        <legend>Started by</legend>
        <label className="inline">
          <input type="radio" name="trigger" checked={draft.trigger === 'webhook'} onChange={() => setDraft({ ...draft, trigger: 'webhook' })} /> a webhook call
        </label>
        <label className="inline">
          <input type="radio" name="trigger" checked={draft.trigger === 'schedule'} onChange={() => setDraft({ ...draft, trigger: 'schedule' })} /> a schedule
        </label>
      </fieldset>
      {draft.trigger === 'schedule' ? (
        <>
          <label>
            Cron
            <input value={draft.cron} readOnly={readonly} placeholder="*/5 * * * *" onChange={(e) => setDraft({ ...draft, cron: e.target.value })} />
          </label>
          <label>
            Time zone (IANA, optional)
            <input value={draft.timezone} readOnly={readonly} placeholder="Europe/Berlin" onChange={(e) => setDraft({ ...draft, timezone: e.target.value })} />
          </label>
        </>
      ) : (
        <>
          <label>
            Callers authenticate with
            <select value={hooks.auth} disabled={readonly} onChange={(e) => setHooks({ auth: e.target.value as WebhookDraft['auth'] })}>
              <option value="none">nothing (anyone with the URL)</option>
              <option value="hmac">an HMAC signature (Standard Webhooks)</option>
              <option value="bearer">a bearer token with webhooks.execute</option>
            </select>
          </label>
          {hooks.auth === 'hmac' && (
            <label>
              HMAC secret
              <input type="password" autoComplete="off" value={hooks.secret} readOnly={readonly} onChange={(e) => setHooks({ secret: e.target.value })} />
            </label>
          )}
          <label>
            Answer
            <select value={hooks.respond} disabled={readonly} onChange={(e) => setHooks({ respond: e.target.value as WebhookDraft['respond'] })}>
              <option value="async">at once (202)</option>
              <option value="sync">with the flow’s webhook-reply step</option>
            </select>
          </label>
        </>
      )}
    </section>
  );
}

// ---------------------------------------------------------------- the page

export function FlowEditorPage() {
  const { id } = useParams();
  const navigate = useNavigate();
  const session = useSession();
  const canWrite = session.can('flows.write');
  const catalogue = useLoad(() => unwrap(api.GET('/api/v1/components', { params: { query: { 'page[size]': 100 } } })).then((r) => r.data), []);
  const secrets = useLoad(
    () => (session.can('secrets.read') ? unwrap(api.GET('/api/v1/secrets', { params: { query: { 'page[size]': 100 } } })).then((r) => r.data) : Promise.resolve([])),
    [],
  );
  const [flow, setFlow] = useState<Flow | undefined>();
  const [loadError, setLoadError] = useState<unknown>();
  const [draft, setDraftState] = useState<Draft>(EMPTY_DRAFT);
  const [canvas, setCanvasState] = useState<Canvas>(() => toCanvas({ nodes: [], edges: [] }, 'webhook'));
  const [dirty, setDirty] = useState(false);
  const [selected, setSelected] = useState<{ kind: 'node' | 'edge'; id: string } | undefined>();
  const [general, setGeneral] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const [notice, setNotice] = useState<string>();
  const [status, setStatus] = useState<string>('inactive');
  const [busy, setBusy] = useState(false);

  const setCanvas = useCallback((c: Canvas | ((c: Canvas) => Canvas), edited = true) => {
    setCanvasState(c);
    if (edited) setDirty(true);
  }, []);
  const setDraft = (d: Draft): void => {
    setDraftState(d);
    setDirty(true);
    setCanvasState((c) => ({ ...c, nodes: c.nodes.map((n) => (n.id === TRIGGER_ID ? { ...n, data: { ...n.data, kind: d.trigger } } : n)) as CanvasNode[] }));
  };

  /** A failed start names its problems: put them on their steps until the next change. */
  const showStartFailure = useCallback((f: Flow) => {
    if (!f.statusReason) return;
    const placed = placeStartFailure(f.statusReason, f.graph);
    setCanvasState((c) => withProblems(c, placed));
    setGeneral(placed.general);
  }, []);

  const show = useCallback(
    (f: Flow, justSaved = false) => {
      setFlow(f);
      setStatus(f.status);
      setDraftState(draftOf(f));
      setCanvasState(toCanvas(f.graph, f.cron ? 'schedule' : 'webhook', keptPositions(f)));
      setDirty(false);
      // The reason of the last failed start stays on the flow until it starts again; once the
      // flow is changed, its problems are the new version's to find.
      if (!justSaved) showStartFailure(f);
    },
    [showStartFailure],
  );

  const load = useCallback(async () => {
    if (!id) return;
    try {
      show((await unwrap(api.GET('/api/v1/flows/{id}', { params: { path: { id } } }))).data);
    } catch (err) {
      setLoadError(err);
    }
  }, [id, show]);
  useEffect(() => void load(), [load]);

  // The status as it changes (starting → active, a failed start → stopping → inactive).
  useEffect(() => {
    if (!id) return;
    return watchFlows({
      flowId: id,
      onFlow: (f) => {
        setStatus(f.status);
        // A failed start leaves its reason on the flow.
        if (f.status === 'inactive' || f.status === 'active')
          void unwrap(api.GET('/api/v1/flows/{id}', { params: { path: { id } } })).then((r) => {
            setFlow(r.data);
            showStartFailure(r.data);
          });
      },
    });
  }, [id, showStartFailure]);

  const readonly = !canWrite || (flow !== undefined && status !== 'inactive');
  const local = localProblems(canvas);
  const selectedNode = selected?.kind === 'node' ? canvas.nodes.find((n) => n.id === selected.id) : undefined;
  const selectedEdge = selected?.kind === 'edge' ? canvas.edges.find((e) => e.id === selected.id) : undefined;

  const functions = useMemo(
    () => (catalogue.data ?? []).flatMap((c) => Object.entries(c.actions).map(([fn, f]) => ({ value: `${c.id}/${fn}`, label: `${c.title ?? c.name} — ${f.title ?? fn}`, componentId: c.id, fn }))),
    [catalogue.data],
  );
  const [toAdd, setToAdd] = useState('');
  const [from, setFrom] = useState(TRIGGER_ID);
  const [to, setTo] = useState('');
  const [connectError, setConnectError] = useState<string>();

  const onAdd = (e: FormEvent): void => {
    e.preventDefault();
    const f = functions.find((x) => x.value === toAdd) ?? functions[0];
    if (!f) return;
    const { canvas: next, id: added } = addStep(canvas, f.componentId, f.fn);
    setCanvas(next);
    setSelected({ kind: 'node', id: added });
  };
  const tryConnect = (source: string, target: string): void => {
    const r = connect(canvas, source, target);
    if (r.ok) {
      setCanvas(r.canvas);
      setConnectError(undefined);
    } else setConnectError(r.reason);
  };

  const save = async (): Promise<void> => {
    setBusy(true);
    setError(undefined);
    setNotice(undefined);
    const graph = toGraph(canvas);
    const schedule = draft.trigger === 'schedule';
    // Keys the editor does not show (the signing secret's `secretId`) stay as they are; `secret`
    // goes only when set (the mask sent back keeps the stored one; a new value replaces it).
    const webhooks: Record<string, unknown> = { ...((flow?.flowSettings?.webhooks ?? {}) as Record<string, unknown>), auth: draft.webhooks.auth, respond: draft.webhooks.respond, timeoutMs: draft.webhooks.timeoutMs };
    if (draft.webhooks.auth === 'hmac' && draft.webhooks.secret) webhooks.secret = draft.webhooks.secret;
    else delete webhooks.secret;
    const others = Object.fromEntries(Object.entries(flow?.flowSettings ?? {}).filter(([k]) => k !== 'webhooks' && k !== 'cockpit'));
    const flowSettings = { ...others, ...(schedule ? {} : { webhooks }), cockpit: { positions: positionsOf(canvas) } };
    try {
      let saved: Flow;
      if (!flow) {
        saved = (
          await unwrap(
            api.POST('/api/v1/flows', {
              body: {
                name: draft.name,
                ...(draft.description ? { description: draft.description } : {}),
                ...(schedule ? { cron: draft.cron, ...(draft.timezone ? { timezone: draft.timezone } : {}) } : {}),
                graph,
                flowSettings,
              },
            }),
          )
        ).data;
        navigate(`/flows/${saved.id}`, { replace: true });
      } else {
        saved = (
          await unwrap(
            api.PATCH('/api/v1/flows/{id}', {
              params: { path: { id: flow.id } },
              body: {
                name: draft.name,
                description: draft.description || null,
                cron: schedule ? draft.cron : null,
                timezone: schedule && draft.timezone ? draft.timezone : null,
                graph,
                flowSettings,
              },
            }),
          )
        ).data;
      }
      show(saved, true);
      setGeneral([]);
      setNotice(`Saved as version ${saved.version}.`);
    } catch (err) {
      const problems = err instanceof ApiError ? err.details?.problems : undefined;
      if (problems) {
        const placed = placeProblems(problems, graph);
        setCanvasState((c) => withProblems(c, placed));
        setGeneral(placed.general);
        setError(new ApiError(400, 'INVALID_FLOW', `The hub refused the flow: ${problems.length} problem${problems.length > 1 ? 's' : ''}, shown on the steps they concern.`));
      } else setError(err);
    } finally {
      setBusy(false);
    }
  };

  const control = async (action: 'start' | 'stop'): Promise<void> => {
    if (!flow) return;
    setError(undefined);
    try {
      const r = await unwrap(api.POST(action === 'start' ? '/api/v1/flows/{id}/start' : '/api/v1/flows/{id}/stop', { params: { path: { id: flow.id } } }));
      setStatus(r.data.status);
    } catch (err) {
      setError(err);
    }
  };

  // Only an inactive flow can go (the hub refuses an active one with INVALID_STATE, shown here).
  const remove = async (): Promise<void> => {
    if (!flow || !window.confirm(`Delete flow ${flow.name}? This cannot be undone.`)) return;
    setError(undefined);
    try {
      await unwrap(api.DELETE('/api/v1/flows/{id}', { params: { path: { id: flow.id } } }));
      await navigate('/flows');
    } catch (err) {
      setError(err);
    }
  };

  if (loadError) return <ErrorNote error={loadError} />;
  if (id && !flow) return <p role="status">Loading…</p>;

  const hookUrl = flow ? `${window.location.origin}/hook/${flow.id}` : '';
  const steps = canvas.nodes.filter(isStep);

  return (
    <>
      <PageHeader title={flow ? `Flow ${flow.name}` : 'New flow'}>
        {flow && <StatusBadge status={status} />}
        {canWrite && (
          <button type="button" className="primary" disabled={busy || readonly || !dirty || local.length > 0 || !draft.name.trim()} onClick={() => void save()}>
            {flow ? 'Save' : 'Create'}
          </button>
        )}
        {flow && session.can('flows.control') && (status === 'inactive' ? (
          <button type="button" disabled={dirty} title={dirty ? 'Save first' : undefined} onClick={() => void control('start')}>
            Start
          </button>
        ) : (
          <button type="button" onClick={() => void control('stop')}>
            Stop
          </button>
        ))}
        {flow && canWrite && status === 'inactive' && (
          <button type="button" className="danger" onClick={() => void remove()}>
            Delete
          </button>
        )}
      </PageHeader>
      {flow?.statusReason && <p className="error">Last start failed: {flow.statusReason}</p>}
      {readonly && flow && canWrite && <p className="notice">The flow is {status}: stop it to change it.</p>}
      {notice && (
        <p role="status" className="notice">
          {notice}
        </p>
      )}
      <ErrorNote error={error} />
      {general.length > 0 && (
        <ul className="error" aria-label="Problems of the flow">
          {general.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <div className="flow-meta">
        <label>
          Name
          <input value={draft.name} required readOnly={readonly} onChange={(e) => setDraft({ ...draft, name: e.target.value })} />
        </label>
        <label>
          Description
          <input value={draft.description} readOnly={readonly} onChange={(e) => setDraft({ ...draft, description: e.target.value })} />
        </label>
      </div>
      {!readonly && (
        <div className="editor-tools">
          <form onSubmit={onAdd} aria-label="Add a step">
            <label>
              Component
              <select value={toAdd || functions[0]?.value || ''} onChange={(e) => setToAdd(e.target.value)}>
                {functions.map((f) => (
                  <option key={f.value} value={f.value}>
                    {f.label}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit">Add step</button>
          </form>
          <form
            aria-label="Connect two nodes"
            onSubmit={(e) => {
              e.preventDefault();
              tryConnect(from, to || steps[0]?.id || '');
            }}
          >
            <label>
              From
              <select value={from} onChange={(e) => setFrom(e.target.value)}>
                {canvas.nodes.map((n) => (
                  <option key={n.id} value={n.id}>
                    {n.id}
                  </option>
                ))}
              </select>
            </label>
            <label>
              To
              <select value={to || steps[0]?.id || ''} onChange={(e) => setTo(e.target.value)}>
                {steps.map((n) => (
                  <option key={n.id} value={n.id}>
                    {n.id}
                  </option>
                ))}
              </select>
            </label>
            <button type="submit">Connect</button>
          </form>
        </div>
      )}
      {connectError && (
        <p role="alert" className="error">
          {connectError}
        </p>
      )}
      {local.length > 0 && (
        <ul className="notice" aria-label="Before saving">
          {local.map((p) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
      <div className="editor">
        <div className="canvas" aria-label="Flow canvas" role="region">
          <ReactFlowProvider>
          <ReactFlow<CanvasNode, CanvasEdge>
            nodes={canvas.nodes}
            edges={canvas.edges}
            nodeTypes={NODE_TYPES}
            onNodesChange={(changes: NodeChange<CanvasNode>[]) => {
              const moved = changes.some((c) => c.type === 'position' || c.type === 'remove');
              setCanvas((c) => ({ ...c, nodes: applyNodeChanges(changes.filter((ch) => !(ch.type === 'remove' && ch.id === TRIGGER_ID)), c.nodes) }), moved);
            }}
            onEdgesChange={(changes: EdgeChange<CanvasEdge>[]) => setCanvas((c) => ({ ...c, edges: applyEdgeChanges(changes, c.edges) }), changes.some((c) => c.type === 'remove'))}
            onNodesDelete={(gone) => setCanvas((c) => removeNodes(c, gone.map((n) => n.id)))}
            onConnect={(c) => c.source && c.target && tryConnect(c.source, c.target)}
            onSelectionChange={({ nodes, edges }) => {
              if (nodes[0]) setSelected({ kind: 'node', id: nodes[0].id });
              else if (edges[0]) setSelected({ kind: 'edge', id: edges[0].id });
            }}
            nodesDraggable={!readonly}
            nodesConnectable={!readonly}
            deleteKeyCode={readonly ? null : ['Delete', 'Backspace']}
            fitView
            fitViewOptions={{ maxZoom: 1 }}
            defaultEdgeOptions={EDGE_OPTIONS}
            proOptions={{ hideAttribution: true }}
          >
            <Background />
            <Controls showInteractive={false} />
            <FitOnCountChange count={canvas.nodes.length} />
          </ReactFlow>
          </ReactFlowProvider>
        </div>
        <aside className="inspector" aria-label="Selected item">
          {selectedNode && isStep(selectedNode) && (
            <StepInspector
              node={selectedNode}
              fn={functionOf(catalogue.data, selectedNode.data.step.componentId, selectedNode.data.step.function)}
              secrets={secrets.data ?? []}
              readonly={readonly}
              canvas={canvas}
              onChange={setCanvas}
            />
          )}
          {selectedNode?.type === 'trigger' && <TriggerInspector draft={draft} setDraft={setDraft} readonly={readonly} />}
          {selectedEdge && <EdgeInspector key={selectedEdge.id} edge={selectedEdge} canvas={canvas} onChange={setCanvas} readonly={readonly} />}
          {!selectedNode && !selectedEdge && <p className="muted">Select a step, an edge or the trigger to edit it.</p>}
          <h2 className="sr-only">Steps</h2>
          <ul className="step-list" aria-label="Steps and trigger">
            {canvas.nodes.map((n) => (
              <li key={n.id}>
                <button type="button" aria-pressed={selected?.id === n.id} onClick={() => setSelected({ kind: 'node', id: n.id })}>
                  {n.id === TRIGGER_ID ? `Trigger (${draft.trigger})` : `Step ${n.id}`}
                  {isStep(n) && n.data.problems.length > 0 ? ` — ${n.data.problems.length} problem(s)` : ''}
                </button>
              </li>
            ))}
            {canvas.edges.map((e) => (
              <li key={e.id}>
                <button type="button" aria-pressed={selected?.id === e.id} onClick={() => setSelected({ kind: 'edge', id: e.id })}>
                  Edge {e.source} → {e.target}
                </button>
              </li>
            ))}
          </ul>
        </aside>
      </div>
      {flow && draft.trigger === 'webhook' && !flow.cron && (
        <section aria-labelledby="webhook-title" className="card">
          <h2 id="webhook-title">Webhook</h2>
          <p>
            <code>{hookUrl}</code> <CopyButton text={hookUrl} label="Copy the webhook URL" />
          </p>
          <p>Send it a message:</p>
          <pre className="json" tabIndex={0} aria-label="curl example">{`curl -X POST '${hookUrl}' \\\n  -H 'content-type: application/json' \\\n  -d '{"id": "A-1", "qty": 3, "price": 50}'`}</pre>
          {draft.webhooks.auth === 'hmac' && <p className="muted">Callers sign with webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks).</p>}
          {draft.webhooks.auth === 'bearer' && <p className="muted">Callers add -H 'authorization: Bearer &lt;token with webhooks.execute&gt;'.</p>}
          {status !== 'active' && <p className="muted">The flow accepts calls while it is active.</p>}
        </section>
      )}
      {flow && (
        <p>
          <Link to={`/executions?flow=${flow.id}`}>Executions of this flow</Link> · <Link to={`/dashboard?flow=${flow.id}`}>Throughput and errors</Link>
        </p>
      )}
      {flow && <Versions flowId={flow.id} version={flow.version} />}
    </>
  );
}
