/**
 * A misbehaving tenant, as a process of its own (so its load does not share an event loop with
 * the measurements of the test that starts it): `node --import tsx abuser.ts '<json Plan>'`.
 * During each window (epoch ms) it floods `floodUrl` at `floodPerSecond`, every tenth call going
 * to `bombUrl`, and has `bigSenders` callers each send a `bigBytes` body to `floodUrl`
 * `bigPerSecond` times a second. It prints one JSON line: answers counted per "<kind> <status>"
 * (-1: the connection closed before an answer).
 */
import http from 'node:http';

export interface AbusePlan {
  floodUrl: string;
  bombUrl: string;
  floodPerSecond: number;
  bigSenders: number;
  bigBytes: number;
  bigPerSecond: number;
  windows: Array<[startMs: number, endMs: number]>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function post(url: string, body: Buffer, fresh: boolean): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'POST', agent: fresh ? false : agent, headers: { 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(-1));
    req.end(body);
  });
}

/** Calls `send` `perSecond` times a second (open loop) from `startMs` until `endMs`. */
async function paced(perSecond: number, startMs: number, endMs: number, send: (i: number) => Promise<void>): Promise<void> {
  const pending: Array<Promise<void>> = [];
  const every = 1_000 / perSecond;
  for (let i = 0; startMs + i * every < endMs; i++) {
    const at = startMs + i * every;
    if (at > Date.now()) await sleep(at - Date.now());
    pending.push(send(i));
  }
  await Promise.all(pending);
}

async function abuse(plan: AbusePlan): Promise<Record<string, number>> {
  const answers: Record<string, number> = {};
  const count = (kind: string, status: number): void => void (answers[`${kind} ${status}`] = (answers[`${kind} ${status}`] ?? 0) + 1);
  const small = Buffer.from('{}');
  const big = Buffer.from(JSON.stringify({ blob: 'x'.repeat(plan.bigBytes) }));
  for (const [startMs, endMs] of plan.windows) {
    const work: Array<Promise<void>> = [];
    if (plan.floodPerSecond > 0) {
      work.push(
        paced(plan.floodPerSecond, startMs, endMs, async (i) => {
          const bomb = i % 10 === 0;
          count(bomb ? 'bomb' : 'flood', await post(bomb ? plan.bombUrl : plan.floodUrl, small, false));
        }),
      );
    }
    for (let k = 0; k < plan.bigSenders; k++) work.push(paced(plan.bigPerSecond, startMs, endMs, async () => count('big', await post(plan.floodUrl, big, true))));
    await Promise.all(work);
  }
  return answers;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as AbusePlan;
abuse(plan).then(
  (answers) => {
    process.stdout.write(`${JSON.stringify(answers)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
