/**
 * An OIH component's run ends when its step's time limit aborts it: the promise settles with the
 * limit's error at once (not at the component's own timeout), and the runner process running it
 * is killed, so nothing of it runs beside the step's retry.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { StepError } from './components.descriptor.js';
import { closeDefaultOihPool, oihComponent, readOihComponent } from './components.oih.js';
import { context, message } from './components.testing.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-abort-'));
afterAll(async () => {
  await closeDefaultOihPool();
  fs.rmSync(dir, { recursive: true, force: true });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('an OIH run past its time limit', () => {
  it('settles at the abort with the limit, and its runner process is killed', async () => {
    fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'component.json'),
      JSON.stringify({ title: 'slow', actions: { slow: { main: './lib/slow.js', title: 'Slow', fields: {} } } }),
    );
    // Says which process it runs in, then would emit after 1.5 s.
    fs.writeFileSync(
      path.join(dir, 'lib', 'slow.js'),
      `exports.process = function (msg) {
         const self = this;
         self.logger.info('runner pid ' + process.pid);
         setTimeout(() => {
           self.emit('data', { data: { late: true } });
           self.emit('end');
         }, 1500);
       };`,
    );
    let logged = '';
    const logger = createLogger('info', new Writable({ write: (chunk: Buffer, _enc, cb) => ((logged += chunk.toString()), cb()) }));
    const def = readOihComponent(dir);
    const component = oihComponent(def, { kind: 'directory', path: dir });
    const step = await component.fn('slow')!.prepare({}, { logger });
    const controller = new AbortController();
    const limit = new StepError('the step did not finish within 100 ms (nodeSettings.timeoutMs)', 'transient');
    const running = step.run(context(message({ n: 1 }), { signal: controller.signal, logger })).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    // Abort once the component is running in its process (a runner's first start takes a while).
    let pid = 0;
    for (const until = Date.now() + 30_000; !pid; ) {
      pid = Number(/runner pid (\d+)/.exec(logged)?.[1] ?? 0);
      if (Date.now() > until) throw new Error(`the component never ran: ${logged}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const abortedAt = Date.now();
    controller.abort(limit);
    expect(await running).toBe(limit);
    expect(Date.now() - abortedAt).toBeLessThan(1_000);
    for (const until = Date.now() + 10_000; alive(pid); ) {
      if (Date.now() > until) throw new Error(`runner ${pid} still alive after the abort`);
      await new Promise((r) => setTimeout(r, 20));
    }
  });
});
