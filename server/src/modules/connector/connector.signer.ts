/**
 * Checking a certificate signing request and signing the client certificate (~1–1.5 ms of CPU
 * together: asn1 schema classes and Node's crypto, connector.ca.ts) run on a small pool of worker
 * threads, so the hub's event loop — where embedded PGlite runs every statement — keeps serving
 * while clients pair. Measured (bench/RESULTS.md "pairing2"): the threads cost ~0.5–1.2 ms of
 * process CPU per pairing of their own and take ~1.5–2 ms off the event loop. The pool starts at the first signing (an idle hub holds
 * no extra thread) and a thread idle for a minute stops again; PLEXUS_CONNECTOR_SIGNER_THREADS
 * sizes it, 0 signs on the main thread. Each
 * thread gets the CA certificate and its non-extractable CryptoKey (cloned, never exported).
 */
import { Worker } from 'node:worker_threads';
import { AppError, type ErrorCode } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { checkCsr, type CertificateAuthority, type SignedCertificate } from './connector.ca.js';

/** The work itself, wherever it runs: refusals are AppError 22 starting `csr: `. */
export async function signHere(ca: CertificateAuthority, csrText: string, subject: string, validityMs: number): Promise<SignedCertificate> {
  return ca.signClientCertificate(await checkCsr(csrText, subject), validityMs);
}

interface Pending {
  resolve: (signed: SignedCertificate) => void;
  reject: (err: Error) => void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** Stops the thread once it has been idle for idleMs. */
  idle: NodeJS.Timeout | undefined;
}

/** A thread with nothing to sign for this long stops (pairings come in bursts: an idle hub holds none). */
const IDLE_MS = 60_000;

type Reply = { ready: true } | { id: number; signed: SignedCertificate } | { id: number; error: { message: string; code: ErrorCode | undefined } };

export class CsrSigner {
  private readonly threads: Thread[] = [];
  private nextId = 1;

  constructor(
    private readonly ca: CertificateAuthority,
    private readonly size: number,
    private readonly logger: Logger,
    private readonly idleMs = IDLE_MS,
  ) {}

  /** How many threads run now. */
  get running(): number {
    return this.threads.length;
  }

  /** Checks the request against `subject` and signs it, on the least busy thread. */
  sign(csrText: string, subject: string, validityMs: number): Promise<SignedCertificate> {
    if (this.size === 0) return signHere(this.ca, csrText, subject, validityMs);
    const thread = this.pick();
    const id = this.nextId++;
    clearTimeout(thread.idle);
    thread.idle = undefined;
    return new Promise((resolve, reject) => {
      thread.pending.set(id, { resolve, reject });
      thread.worker.postMessage({ id, csr: csrText, subject, validityMs });
    });
  }

  /** Stops the threads; what they still had to sign fails. */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    for (const t of threads) clearTimeout(t.idle);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pick(): Thread {
    let best: Thread | undefined;
    for (const t of this.threads) if (!best || t.pending.size < best.pending.size) best = t;
    // A new thread while all are busy, up to the pool's size.
    if (best && (best.pending.size === 0 || this.threads.length >= this.size)) return best;
    return this.start();
  }

  private start(): Thread {
    // Run from the sources (tests, tsx) this file is `.ts`, and the worker loads its siblings through tsx.
    const fromSources = import.meta.url.endsWith('.ts');
    const worker = new Worker(new URL('./connector.signer-worker.mjs', import.meta.url), {
      execArgv: [],
      workerData: { fromSources, caPem: this.ca.pem, key: this.ca.key },
    });
    // Pending work keeps the hub alive anyway (its HTTP request waits); an idle thread must not.
    worker.unref();
    const thread: Thread = { worker, pending: new Map(), idle: undefined };
    const fail = (err: Error): void => {
      clearTimeout(thread.idle);
      const i = this.threads.indexOf(thread);
      if (i >= 0) this.threads.splice(i, 1);
      for (const p of thread.pending.values()) p.reject(err);
      thread.pending.clear();
    };
    worker.on('message', (m: Reply) => {
      if ('ready' in m) return;
      const p = thread.pending.get(m.id);
      if (!p) return;
      thread.pending.delete(m.id);
      if (thread.pending.size === 0) {
        thread.idle = setTimeout(() => {
          // Out of the pool first: nothing new is sent to a thread that is stopping.
          const i = this.threads.indexOf(thread);
          if (i >= 0) this.threads.splice(i, 1);
          void worker.terminate();
        }, this.idleMs);
        thread.idle.unref();
      }
      if ('signed' in m) p.resolve(m.signed);
      else p.reject(m.error.code ? new AppError(m.error.code, m.error.message) : new Error(`the certificate signer failed: ${m.error.message}`));
    });
    worker.on('error', (err) => {
      this.logger.error({ err }, 'certificate signer thread failed');
      fail(err);
    });
    worker.on('exit', (code) => fail(new Error(`the certificate signer thread exited (${code})`)));
    this.threads.push(thread);
    return thread;
  }
}
