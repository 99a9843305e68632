// Entry of a signer worker thread (connector.signer.ts): checks a certificate signing request and
// signs the client certificate with the CA key the parent handed over (a non-extractable
// CryptoKey, cloned to this thread; it is never exported). In the compiled hub (server/dist) its
// sibling is plain JavaScript; run from the sources (tests, `tsx`), the parent says so and the
// worker loads them through tsx (docs/adr/0010-compiled-at-install.md).
import { parentPort, workerData } from 'node:worker_threads';

if (workerData.fromSources) {
  const { register } = await import('tsx/esm/api');
  register();
}
const { signHere } = await import('./connector.signer.js');
const { caFromKey } = await import('./connector.ca.js');
const ca = caFromKey(workerData.caPem, workerData.key);
parentPort.on('message', async ({ id, csr, subject, validityMs }) => {
  try {
    parentPort.postMessage({ id, signed: await signHere(ca, csr, subject, validityMs) });
  } catch (err) {
    // An AppError (a refused request) keeps its code and message; anything else is a failure.
    parentPort.postMessage({ id, error: { message: err instanceof Error ? err.message : String(err), code: err?.name === 'AppError' ? err.code : undefined } });
  }
});
parentPort.postMessage({ ready: true });
