/**
 * `plexus worker`: a worker process serving OIH-format and built-in components to one or more
 * aggregator instances. Wiring only: components (components.ts) + the SDK (index.ts).
 */
import os from 'node:os';
import path from 'node:path';
import type { Logger } from '../platform/logger.js';
import { loadComponent, toWorkerComponent } from './components.js';
import { Worker } from './index.js';

export interface WorkerCommandOptions {
  routers: string[];
  components: string[];
  secret?: string | undefined;
  credentialFile?: string | undefined;
  id?: string | undefined;
  concurrency: number;
  tls?: boolean | undefined;
  ca?: Buffer | undefined;
  /** Client certificate and key (PEM): attach with a runtime's certificate instead of a secret. */
  cert?: Buffer | undefined;
  key?: Buffer | undefined;
  /** Where the credential goes by default (the CLI's config directory). */
  configDir: string;
}

/** Starts the worker; resolves once attached, with a stop function (also wired to SIGTERM / SIGINT). */
export async function runWorker(opts: WorkerCommandOptions, logger: Logger): Promise<{ worker: Worker; stop: () => Promise<void> }> {
  const workerId = opts.id ?? os.hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 100);
  const components = [];
  for (const spec of opts.components) components.push(toWorkerComponent(await loadComponent(spec, logger), logger));
  const worker = new Worker({
    routers: opts.routers,
    workerId,
    enrolmentSecret: opts.secret,
    credentialFile: opts.credentialFile ?? path.join(opts.configDir, `worker-${workerId}.credential`),
    components,
    concurrency: opts.concurrency,
    tls: opts.ca || opts.cert ? { ca: opts.ca, cert: opts.cert, key: opts.key } : opts.tls,
    logger,
    // Refused for good later (credential revoked, component no longer allowed): nothing to serve.
    onRefused: (err) => {
      logger.error({ code: err.code, reason: err.message }, 'plexus worker: refused by a router; exiting');
      process.exitCode = 3;
      void worker.stop().then(() => process.exit(3));
    },
  });
  await worker.start();
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= worker.stop({ drain: true, timeoutMs: 30_000 }));
  const onSignal = () => void stop().then(() => process.exit(0));
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return { worker, stop };
}
