/**
 * Start and stop in order. On SIGTERM/SIGINT: stop accepting (HTTP closes its listener while
 * in-flight requests finish), stop modules in reverse order (consumers drain), then close the
 * bus and the database; exit 0. A second signal or the shutdown timeout exits at once.
 */
import type { Logger } from './logger.js';

export interface Stoppable {
  name: string;
  stop(): Promise<void>;
}

export class Lifecycle {
  private readonly stack: Stoppable[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  /** Registers something to stop; the last registered stops first. */
  onStop(name: string, stop: () => Promise<void>): void {
    this.stack.push({ name, stop });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of [...this.stack].reverse()) {
        try {
          await s.stop();
        } catch (err) {
          this.logger.error({ err, component: s.name }, 'error while stopping');
        }
      }
    })();
    return this.stopping;
  }

  /**
   * Exits the process cleanly on SIGTERM/SIGINT. With `stopWhenOrphaned`, also when the parent
   * process goes away: `npx plexus start` runs us under npm through `sh -c`, and a SIGTERM to npm
   * ends that shell without passing the signal on, which would leave the hub running, orphaned,
   * holding its port and data directory. Node has no parent-death event, so the parent's pid is
   * compared once a second (`npm start` execs node directly and needs none of this).
   */
  handleSignals(timeoutMs: number, opts: { stopWhenOrphaned?: boolean; orphanCheckMs?: number } = {}): void {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals | 'parent exited'): void => {
      if (signalled) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
      clearInterval(orphanWatch);
      this.logger.info({ signal }, 'draining');
      const timer = setTimeout(() => {
        this.logger.error({ timeoutMs }, 'drain timed out; exiting');
        process.exit(1);
      }, timeoutMs);
      timer.unref();
      void this.stop().then(() => {
        this.logger.info('stopped');
        process.exit(0);
      });
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
    const parent = process.ppid;
    const orphanWatch = opts.stopWhenOrphaned
      ? setInterval(() => {
          if (process.ppid !== parent) onSignal('parent exited');
        }, opts.orphanCheckMs ?? 1000).unref()
      : undefined;
  }
}
