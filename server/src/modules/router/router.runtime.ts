/**
 * The `workers` runtime: flow steps whose component call runs on the router's gRPC workers.
 *
 * The step's queue (`step.<flowId>.<nodeId>` on the bus, durable) is the waiting queue. This
 * instance consumes it only while a compatible worker (tenant, component, function, version,
 * not draining) is attached here, so jobs wait in the queue — not in memory — while no worker
 * can take them, and any aggregator instance with such a worker may claim them. The engine's
 * step runner handles each job as for a local step (records, retries, commits); its component
 * call is the prepared step below, which sends a `Delivery` and waits for the `StepOutcome`.
 */
import { z } from 'zod';
import type { StepJob } from '../../contracts/flows.js';
import { FlowMessage } from '../../contracts/flows.js';
import type { Bus, Consumer, JobHandler } from '../../platform/bus/index.js';
import type { Logger } from '../../platform/logger.js';
import { StepError, type PreparedStep, type StepResult } from '../components/index.js';
import { WORKERS_RUNTIME, type Placement, type RemoteRuntime, type RemoteTarget, type StepPlacement } from '../orchestrator/index.js';
import type { Dispatcher } from './router.dispatch.js';
import { parseJsonBytes } from './router.protocol.js';

/** What a worker may answer for a step: checked before the engine routes any of it. */
const RemoteResult = z.strictObject({
  messages: z
    .array(
      z.strictObject({
        message: FlowMessage.omit({ id: true }).extend({ id: z.string().max(200).optional() }),
        delayMs: z.number().int().min(0).max(86_400_000).optional(),
      }),
    )
    .max(10_000)
    .default([]),
  snapshot: z.strictObject({ value: z.unknown() }).optional(),
  rebound: z.strictObject({ reason: z.string().max(4_000) }).optional(),
  reply: z.strictObject({ status: z.number().int().min(100).max(599), headers: z.record(z.string(), z.string()).default({}), body: z.unknown() }).optional(),
});

interface Demand {
  step: StepPlacement & { remote: RemoteTarget };
  handler: JobHandler<StepJob>;
  consumer: Consumer | undefined;
  /** Serialises starting and stopping its consumer. */
  chain: Promise<void>;
  stopped: boolean;
}

export function createWorkersRuntime(bus: Bus, dispatcher: Dispatcher, logger: Logger, opts: { secure: () => boolean }): RemoteRuntime & { close(): Promise<void> } {
  const demands = new Set<Demand>();

  const evaluate = (d: Demand): void => {
    d.chain = d.chain.then(async () => {
      const r = d.step.remote;
      const want = !d.stopped && dispatcher.hasCompatible(r.tenant, r.component, r.function, r.version);
      try {
        if (want && !d.consumer) {
          d.consumer = await bus.consume<StepJob>(d.step.queue, d.handler, {
            concurrency: d.step.concurrency,
            batchSize: Math.min(d.step.concurrency, 100),
            maxAttempts: d.step.maxDeliveries,
          });
          logger.debug({ queue: d.step.queue }, 'router: consuming a remote step queue');
        } else if (!want && d.consumer) {
          const c = d.consumer;
          d.consumer = undefined;
          await c.stop();
          logger.debug({ queue: d.step.queue }, 'router: no compatible worker attached; the step queue waits');
        }
      } catch (err) {
        logger.warn({ err, queue: d.step.queue }, 'router: could not (un)consume a remote step queue');
      }
    });
  };

  const unsubscribe = dispatcher.onChange(() => {
    for (const d of demands) evaluate(d);
  });

  return {
    name: WORKERS_RUNTIME,
    async place(step: StepPlacement, handler: JobHandler<StepJob>): Promise<Placement> {
      if (!step.remote) throw new Error(`step ${step.nodeId} has no remote target`);
      const d: Demand = { step: { ...step, remote: step.remote }, handler, consumer: undefined, chain: Promise.resolve(), stopped: false };
      demands.add(d);
      evaluate(d);
      await d.chain;
      return {
        stop: async () => {
          d.stopped = true;
          demands.delete(d);
          evaluate(d);
          await d.chain;
        },
      };
    },

    prepareStep(target: RemoteTarget, fields: Record<string, unknown>, timeoutMs: number): PreparedStep {
      return {
        // The worker's component may keep state between runs (OIH snapshots).
        usesSnapshot: true,
        pure: false,
        async run(ctx): Promise<StepResult> {
          if (ctx.credentials !== undefined && !opts.secure()) {
            throw new StepError(
              'the step has a credential, and credentials reach workers only over TLS: set PLEXUS_GRPC_TLS_CERT and PLEXUS_GRPC_TLS_KEY on the router, or run the step locally',
              'user',
            );
          }
          const outcome = await dispatcher.call({
            tenant: target.tenant,
            component: target.component,
            function: target.function,
            version: target.version,
            needsSecure: ctx.credentials !== undefined,
            deadline: Date.now() + timeoutMs,
            payload: {
              tenant: ctx.tenant,
              flowId: ctx.flowId,
              nodeId: ctx.nodeId,
              executionId: ctx.executionId,
              idempotencyKey: ctx.idempotencyKey,
              attempt: ctx.attempt,
              message: ctx.message,
              fields,
              snapshot: ctx.snapshot,
              ...(ctx.credentials !== undefined ? { credentials: ctx.credentials, credentialsType: ctx.credentialsType } : {}),
            },
          });
          if (outcome.error) {
            const e = outcome.error;
            throw new StepError(e.message || 'the worker reported a failure without a message', e.kind === 'user' ? 'user' : 'transient', e.retry_after_ms > 0 ? e.retry_after_ms : undefined);
          }
          let raw: unknown;
          try {
            raw = parseJsonBytes(outcome.result_json, 'result_json') ?? {};
          } catch (err) {
            throw new StepError(`the worker answered an invalid result: ${(err as Error).message}`, 'user');
          }
          const parsed = RemoteResult.safeParse(raw);
          if (!parsed.success) {
            throw new StepError(`the worker answered an invalid result: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'result'}: ${i.message}`).join('; ')}`, 'user');
          }
          const r = parsed.data;
          return {
            messages: r.messages.map((m, i) => ({
              message: { ...m.message, id: m.message.id ?? `${ctx.idempotencyKey}:${i}` },
              ...(m.delayMs !== undefined ? { delayMs: m.delayMs } : {}),
            })),
            ...(r.snapshot ? { snapshot: r.snapshot } : {}),
            ...(r.rebound ? { rebound: r.rebound } : {}),
            ...(r.reply ? { reply: r.reply } : {}),
          };
        },
      };
    },

    async close(): Promise<void> {
      unsubscribe();
      await Promise.all(
        [...demands].map((d) => {
          d.stopped = true;
          evaluate(d);
          return d.chain;
        }),
      );
    },
  };
}
