// Entry of the spec validation worker thread (director.specs.ts): loads the TypeScript sources
// through tsx, as the main thread does (docs/adr/0001-tsx-at-runtime.md), then validates one
// document per message.
import { parentPort } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
const { validateSpecHere } = await import('./director.specs.ts');
parentPort.on('message', async (spec) => {
  try {
    parentPort.postMessage(await validateSpecHere(spec));
  } catch (err) {
    parentPort.postMessage({ valid: false, problems: [{ message: `the parser failed: ${err instanceof Error ? err.message : String(err)}`, path: '' }] });
  }
});
