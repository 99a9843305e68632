/**
 * An OIH component's run ends when its step's time limit aborts it: the promise settles with the
 * limit's error at once (not at the component's own timeout), what it emits afterwards is
 * refused, and a component that looks at `this.signal` sees it aborted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../platform/logger.js';
import { StepError } from './components.descriptor.js';
import { oihComponent, readOihComponent } from './components.oih.js';
import { context, message } from './components.testing.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-oih-abort-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('an OIH run past its time limit', () => {
  it('settles at the abort, refuses later emits, and shows the component its signal', async () => {
    fs.mkdirSync(path.join(dir, 'lib'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'component.json'),
      JSON.stringify({ title: 'slow', actions: { slow: { main: './lib/slow.js', title: 'Slow', fields: {} } } }),
    );
    // Emits after 1.5 s, and records whether it was told to stop by then.
    fs.writeFileSync(
      path.join(dir, 'lib', 'slow.js'),
      `exports.process = function (msg) {
         const self = this;
         setTimeout(() => {
           globalThis.__plexusSawAbort = Boolean(self.signal && self.signal.aborted);
           self.emit('data', { data: { late: true } });
           self.emit('end');
         }, 1500);
       };`,
    );
    const def = readOihComponent(dir);
    const component = oihComponent(def, { kind: 'directory', path: dir });
    const step = await component.fn('slow')!.prepare({}, { logger: createLogger('silent') });
    const controller = new AbortController();
    const limit = new StepError('the step did not finish within 100 ms (nodeSettings.timeoutMs)', 'transient');
    setTimeout(() => controller.abort(limit), 100);
    const startedAt = Date.now();
    const outcome = await step.run(context(message({ n: 1 }), { signal: controller.signal })).then(
      () => 'resolved',
      (err: unknown) => err,
    );
    expect(outcome).toBe(limit);
    expect(Date.now() - startedAt).toBeLessThan(1_200);
    await new Promise((r) => setTimeout(r, 1_800));
    expect((globalThis as { __plexusSawAbort?: boolean }).__plexusSawAbort).toBe(true);
  });
});
