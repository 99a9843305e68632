// Load generator of bench/connector.ts, run in a worker thread so the hub keeps the main thread:
// `clients` loops, each with one keep-alive connection (HTTP, or HTTPS with its own client
// certificate), each sending one request after another until the time is up.
import http from 'node:http';
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

const { url, clients, durationMs, identities, kind } = workerData;
const target = new URL(url);
const isTls = target.protocol === 'https:';
const deadline = Date.now() + durationMs;
const latencies = [];
let accepted = 0;
let other = 0;
let errors = 0;

function body(client, n) {
  if (kind === 'event') {
    return JSON.stringify({ specversion: '1.0', id: `${client}-${n}-${Math.random().toString(36).slice(2)}`, source: `/bench/${client}`, type: 'order.created', data: { orderId: `o-${n}`, total: 19.9 } });
  }
  return JSON.stringify({ orderId: 4711, customer: { id: 'c-42', name: 'Ada' }, items: [{ sku: 'book', qty: 1 }], total: 19.9 });
}

function once(agent, client, n) {
  return new Promise((resolve) => {
    const payload = body(client, n);
    const started = performance.now();
    const req = (isTls ? https : http).request(
      target,
      { method: 'POST', agent, headers: { 'content-type': kind === 'event' ? 'application/cloudevents+json' : 'application/json', 'content-length': Buffer.byteLength(payload) } },
      (res) => {
        res.resume();
        res.on('end', () => {
          latencies.push(performance.now() - started);
          if (res.statusCode === 202) accepted++;
          else other++;
          resolve();
        });
      },
    );
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end(payload);
  });
}

async function loop(client) {
  const id = identities?.[client];
  const agent = isTls ? new https.Agent({ keepAlive: true, maxSockets: 1, key: id.key, cert: id.cert, ca: id.ca }) : new http.Agent({ keepAlive: true, maxSockets: 1 });
  for (let n = 0; Date.now() < deadline; n++) await once(agent, client, n);
  agent.destroy();
}

const started = Date.now();
await Promise.all(Array.from({ length: clients }, (_, i) => loop(i)));
const seconds = (Date.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
parentPort.postMessage({ accepted, other, errors, seconds, p50: q(0.5), p99: q(0.99) });
