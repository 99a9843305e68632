/**
 * Helpers for flow-plane tests: sample flows, polling, and a stand-in for the orchestrator's
 * part of the lifecycle for hubs that run without the orchestrator role (it answers
 * `flow.starting` with `flow.started` and `flow.stopping` with `flow.stopped`, through the bus
 * like the real one).
 */
import type { ComponentCatalog } from '../../src/contracts/flows.js';
import type { Bus, Consumer } from '../../src/platform/bus/index.js';

/** A few built-ins, enough to validate graphs without the components module. */
export const BUILTIN_FUNCTIONS: Record<string, string[]> = {
  'http-request': ['request'],
  transform: ['jsonata'],
  filter: ['condition'],
  code: ['run'],
  split: ['each'],
  delay: ['wait'],
  log: ['write'],
  'webhook-reply': ['reply'],
};

export const testCatalog: ComponentCatalog = {
  async checkFunction(_tenant, componentId, fn) {
    const fns = BUILTIN_FUNCTIONS[componentId];
    if (!fns) return `unknown component ${componentId}`;
    return fns.includes(fn) ? undefined : `component ${componentId} has no function ${fn}`;
  },
};

/** A valid two-step flow: log → log. */
export function sampleFlow(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'Orders to log',
    description: 'receives orders',
    graph: {
      nodes: [
        { id: 'receive', componentId: 'log', function: 'write', fields: { level: 'debug' } },
        { id: 'write', componentId: 'log', function: 'write', fields: { level: 'debug' } },
      ],
      edges: [{ source: 'receive', target: 'write' }],
    },
    ...overrides,
  };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface StandInOrchestrator {
  /** The next flow.starting is answered with flow.failed and this reason. */
  failNextStart(reason: string): void;
  /** While set, lifecycle events are received but not answered (a hung orchestrator). */
  silent: boolean;
  stop(): Promise<void>;
}

export async function startStandInOrchestrator(bus: Bus): Promise<StandInOrchestrator> {
  let failReason: string | undefined;
  const state = { silent: false };
  const consumer: Consumer = await bus.subscribe<{ id: string }>('flow.*', 'test-orchestrator', async (event) => {
    if (state.silent) return;
    if (event.headers.name === 'flow.starting') {
      if (failReason !== undefined) {
        const reason = failReason;
        failReason = undefined;
        await bus.publish('flow.failed', { id: event.payload.id, reason });
      } else {
        await bus.publish('flow.started', { id: event.payload.id });
      }
    } else if (event.headers.name === 'flow.stopping') {
      await bus.publish('flow.stopped', { id: event.payload.id });
    }
  });
  return {
    failNextStart(reason) {
      failReason = reason;
    },
    get silent() {
      return state.silent;
    },
    set silent(v: boolean) {
      state.silent = v;
    },
    stop: () => consumer.stop(),
  };
}
