import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ADMIN_PASSWORD, api, openLoop, processCpuSeconds, startHub, startSink } from './flow.js';
const kind = process.argv[2] ?? 'code';
const rates = (process.argv[3] ?? '200,400').split(',').map(Number);
const sink = await startSink();
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-prof-'));
const hub = await startHub({ PLEXUS_DATA_DIR: dataDir }, process.env.HUB_DIR);
const login = await api(hub.url, 'POST', '/api/v1/login', { username: 'admin', password: ADMIN_PASSWORD });
const token = (login.body as { token: string }).token;
const first = kind === 'code'
  ? { id: 'code', componentId: 'code', function: 'run', fields: { code: 'return { t: body.t, order: body.n, total: body.amount * 2 };' } }
  : { id: 'code', componentId: 'transform', function: 'jsonata', fields: { expression: '{"t": t, "order": n, "total": amount * 2}' } };
const created = await api(hub.url, 'POST', '/api/v1/flows', { name: 'p', flowSettings: { webhooks: { auth: 'none', respond: 'async' } }, graph: { nodes: [first, { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: sink.url } }], edges: [{ source: 'code', target: 'send' }] } }, token);
const id = (created.body as { data: { id: string } }).data.id;
await api(hub.url, 'POST', `/api/v1/flows/${id}/start`, undefined, token);
for (;;) { const f = await api(hub.url, 'GET', `/api/v1/flows/${id}`, undefined, token); if ((f.body as any).data.status === 'active') break; await new Promise((r) => setTimeout(r, 50)); }
for (const rate of rates) {
  sink.reset();
  const c0 = processCpuSeconds(hub.child.pid);
  const t0 = Date.now();
  const r = await openLoop([`${hub.url}/hook/${id}`], 50, 8000, rate);
  const until = Date.now() + 60_000;
  while (sink.count() < r.accepted && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  const secs = (Date.now() - t0) / 1000;
  const c1 = processCpuSeconds(hub.child.pid);
  console.log(kind, 'rate', rate, 'accepted', r.accepted, 'delivered', sink.count(), 'in', secs.toFixed(1), 's', 'cpu µs/exec', Math.round(((c1 - c0) * 1e6) / sink.count()), 'hub cpu %', Math.round(((c1 - c0) / secs) * 100));
}
await hub.stop(); await sink.close();
