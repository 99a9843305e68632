// Entry of the spec validation worker thread (director.specs.ts), then validates one document
// per message. In the compiled hub (server/dist) its sibling is plain JavaScript; run from the
// sources (tests, `tsx`), the parent says so and the worker loads them through tsx
// (docs/adr/0010-compiled-at-install.md).
import { parentPort, workerData } from 'node:worker_threads';

if (workerData?.fromSources) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { validateSpecHere } = await import('./director.specs.js');
parentPort.on('message', async (spec) => {
  try {
    parentPort.postMessage(await validateSpecHere(spec));
  } catch (err) {
    parentPort.postMessage({ valid: false, problems: [{ message: `the parser failed: ${err instanceof Error ? err.message : String(err)}`, path: '' }] });
  }
});
