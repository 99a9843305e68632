/**
 * `code` / `run`: tenant JavaScript, run in the sandbox pool (components.sandbox.ts).
 *
 * The code is the body of an async function of `(body, headers, metadata, message, snapshot,
 * emit)`. It emits what it returns (one message; `undefined` emits none, like Node-RED's
 * function node), or, when it calls `emit(body)`, every emitted body in order. `fetch` is the
 * one way out; `console.*` lines are kept in the hub log. Errors name the line of the code.
 */
import vm from 'node:vm';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Outbound } from '../../../platform/outbound/index.js';
import { StepError, deriveMessage } from '../components.descriptor.js';
import type { SandboxPool } from '../components.sandbox.js';
import { builtinComponent, builtinFunction } from './define.js';

export interface CodeComponentOptions {
  pool: SandboxPool;
  /** The operator's network policy: what `allowPrivateNetwork` may ask for, and its default. */
  outbound: Outbound;
}

/** Compiles without running, so a syntax error stops the flow from starting, with its line. */
function checkSyntax(code: string): void {
  try {
    new vm.Script(`(async function (body, headers, metadata, message, snapshot, emit) {\n${code}\n})`, { filename: 'code.js', lineOffset: -1 });
  } catch (err) {
    const e = err as Error;
    const line = /code\.js:(\d+)/.exec(e.stack ?? '')?.[1];
    throw new StepError(`fields.code: ${e.name}: ${e.message}${line ? ` at line ${line}` : ''}`, 'user');
  }
}

export function createCodeComponent(options: CodeComponentOptions) {
  return builtinComponent({
    name: 'code',
    title: 'Code',
    description: 'Runs JavaScript in a sandbox.',
    functions: {
      run: builtinFunction({
        title: 'Run',
        description:
          'Runs `code` as the body of `async (body, headers, metadata, message, snapshot, emit) => …` in a sandbox (fresh context, no require, no process, memory and time limits, `fetch` for HTTP). The returned value is the next body; return nothing to drop the message, or call emit(body) once per message to emit several. Errors report the line.',
        fields: z.strictObject({
          code: z.string().min(1).max(200_000),
          timeoutMs: z.number().int().min(10).max(60_000).default(5_000),
          allowPrivateNetwork: z.boolean().optional(),
        }),
        checkPolicy(fields) {
          const why = options.outbound.privateNetworkProblem(fields.allowPrivateNetwork);
          return why && `fields.allowPrivateNetwork: ${why}`;
        },
        prepare(fields) {
          checkSyntax(fields.code);
          const allowPrivateNetwork = fields.allowPrivateNetwork ?? options.outbound.policy.allowPrivateNetwork;
          return {
            usesSnapshot: /\bsnapshot\b/.test(fields.code),
            async run(ctx) {
              const { message } = ctx;
              const inputJson = JSON.stringify({ id: message.id, body: message.body ?? null, headers: message.headers, metadata: message.metadata, attachments: message.attachments, snapshot: ctx.snapshot ?? null });
              let outcome;
              try {
                outcome = await options.pool.run({ code: fields.code, inputJson, timeoutMs: fields.timeoutMs, allowPrivateNetwork });
              } catch (err) {
                const logs = (err as { logs?: Array<{ level: string; text: string }> }).logs;
                for (const l of logs ?? []) ctx.logger.info({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId, console: l.level }, l.text);
                throw err;
              }
              for (const l of outcome.logs) ctx.logger.info({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId, console: l.level }, l.text);
              const bodies = JSON.parse(outcome.emittedJson) as unknown[];
              return { messages: bodies.map((body) => ({ message: deriveMessage(message, body, randomUUID()) })) };
            },
          };
        },
      }),
    },
  });
}
