/**
 * A stand-in hub for components.sandbox tests that must kill the hub: it runs one code step
 * that never ends in a real sandbox pool and prints the runner's pid, then waits to be killed.
 */
import { createLogger } from '../../src/platform/logger.js';
import { SandboxPool } from '../../src/modules/components/components.sandbox.js';

const pool = new SandboxPool({ size: 1, memoryMb: 32, cpuTimeMs: 60_000, slotsFor: () => 1, logger: createLogger('silent') });
void pool.run({ tenant: 'acme', code: 'for (;;) {}', inputJson: '{}', timeoutMs: 60_000, fetch: () => Promise.reject(new Error('no fetch here')) }).catch(() => undefined);
const timer = setInterval(() => {
  const busy = pool.describe().find((r) => r.state === 'busy');
  if (busy?.pid !== undefined) {
    process.stdout.write(`runner ${busy.pid}\n`);
    clearInterval(timer);
  }
}, 20);
