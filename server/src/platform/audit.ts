/**
 * Every module reports its changes and denied accesses as `audit.<module>.<action>` events;
 * the audit module stores all of them. This is the one way to emit such an event.
 */
import type { Bus } from './bus/bus.js';
import type { Queryable } from './db/db.js';
import type { Logger } from './logger.js';

export type AuditResult = 'success' | 'failure' | 'denied';

export interface AuditActor {
  accountId?: string | undefined;
  username?: string | undefined;
  tenantId?: string | undefined;
}

export interface AuditRecordInput {
  action: string;
  actor?: AuditActor | undefined;
  /** The tenant the change happened in (defaults to the actor's). */
  tenantId?: string | undefined;
  /** What was touched: `{type:'flow', id:'…'}`. Never a secret value. */
  target?: { type: string; id?: string | undefined; name?: string | undefined } | undefined;
  result: AuditResult;
  sourceIp?: string | undefined;
  details?: Record<string, unknown> | undefined;
}

/** The payload of every `audit.*` event. */
export interface AuditPayload extends AuditRecordInput {
  module: string;
  at: string;
}

export interface AuditPublisher {
  record(input: AuditRecordInput, opts?: { tx?: Queryable }): Promise<void>;
  /** Several records at once; inside a transaction one write for all of them. */
  recordMany(inputs: readonly AuditRecordInput[], opts?: { tx?: Queryable }): Promise<void>;
  /**
   * The bus event of a record, for a caller that publishes it together with other modules' events
   * (one `bus.publishMany`, inside its transaction).
   */
  event(input: AuditRecordInput): AuditEvent;
}

/** An `audit.<module>.<action>` event as the bus publishes it. */
export interface AuditEvent {
  name: string;
  payload: AuditPayload;
}

export function createAuditPublisher(bus: Bus, module: string, logger: Logger): AuditPublisher {
  const payloadOf = (input: AuditRecordInput, at: string): AuditPayload => ({ ...input, tenantId: input.tenantId ?? input.actor?.tenantId, module, at });
  return {
    async record(input, opts) {
      try {
        await bus.publish(`audit.${module}.${input.action}`, payloadOf(input, new Date().toISOString()), opts);
      } catch (err) {
        // Inside a caller's transaction the failure must abort the change; otherwise log loudly.
        if (opts?.tx) throw err;
        logger.error({ err, action: input.action }, 'could not publish audit event');
      }
    },
    event(input) {
      return { name: `audit.${module}.${input.action}`, payload: payloadOf(input, new Date().toISOString()) };
    },
    async recordMany(inputs, opts) {
      const at = new Date().toISOString();
      try {
        await bus.publishMany(inputs.map((input) => ({ name: `audit.${module}.${input.action}`, payload: payloadOf(input, at) })), opts);
      } catch (err) {
        if (opts?.tx) throw err;
        logger.error({ err, actions: inputs.map((i) => i.action) }, 'could not publish audit events');
      }
    },
  };
}
