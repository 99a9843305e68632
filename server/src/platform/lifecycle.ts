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

  /** Exits the process cleanly on SIGTERM/SIGINT. */
  handleSignals(timeoutMs: number): void {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (signalled) {
        this.logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      signalled = true;
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
  }
}
