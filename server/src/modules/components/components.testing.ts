/** Test helpers for component tests: a step context around a message. */
import { randomUUID } from 'node:crypto';
import type { FlowMessage } from '../../contracts/flows.js';
import { createLogger } from '../../platform/logger.js';
import type { ComponentFunction, StepContext, StepResult } from './components.descriptor.js';

export function message(body: unknown, extra: Partial<FlowMessage> = {}): FlowMessage {
  return { id: randomUUID(), attachments: {}, body, headers: {}, metadata: {}, ...extra };
}

export function context(msg: FlowMessage, extra: Partial<StepContext> = {}): StepContext {
  return {
    tenant: 'default',
    flowId: 'flow-1',
    nodeId: 'node-1',
    executionId: 'exec-1',
    idempotencyKey: 'exec-1:node-1:0',
    attempt: 1,
    message: msg,
    credentials: undefined,
    snapshot: undefined,
    logger: createLogger('silent'),
    ...extra,
  };
}

/** Prepares `fn` with `fields` and runs it once on `body`. */
export async function runOnce(fn: ComponentFunction | undefined, fields: Record<string, unknown>, body: unknown, extra: Partial<StepContext> = {}): Promise<StepResult> {
  if (!fn) throw new Error('no such function');
  const step = await fn.prepare(fields, { logger: createLogger('silent') });
  return step.run(context(message(body), extra));
}

export function bodies(result: StepResult): unknown[] {
  return result.messages.map((m) => m.message.body);
}
