/**
 * `code` / `run`: tenant JavaScript, run out of the hub in the sandbox (components.sandbox.ts).
 *
 * The code is the body of an async function of `(body, headers, metadata, message, snapshot,
 * emit)`. It emits what it returns (one message; `undefined` emits none, like Node-RED's
 * function node), or, when it calls `emit(body)`, every emitted body in order. `fetch` is the
 * one way out, performed by the hub (platform/outbound's codeFetch) under the operator's network policy; `console.*`
 * lines are kept in the hub log. Errors name the line of the code.
 */
import vm from 'node:vm';
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { Outbound } from '../../../platform/outbound/index.js';
import { StepError, deriveMessage } from '../components.descriptor.js';
import type { CodeSandbox } from '../components.sandbox.js';
import { builtinComponent, builtinFunction } from './define.js';

export interface CodeComponentOptions {
  sandbox: CodeSandbox;
  /** The operator's network policy: what `allowPrivateNetwork` may ask for, its default, and the code's fetch (`codeFetch`). */
  outbound: Outbound;
  /** Largest response body a fetch of the code may receive. */
  maxFetchBytes?: number;
}

const DEFAULT_MAX_FETCH_BYTES = 10 * 1024 * 1024;

/**
 * Compiles without running, so a syntax error stops the flow from starting, with its line.
 * Parsing in the hub runs none of the code; the code itself only ever runs in the sandbox.
 */
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
          'Runs `code` as the body of `async (body, headers, metadata, message, snapshot, emit) => …` in a sandbox out of the hub (a separate process, a fresh V8 context per run: no require, no process, no Node.js API; wall time, CPU time and memory limits; `fetch` for HTTP under the hub network policy). The returned value is the next body; return nothing to drop the message, or call emit(body) once per message to emit several. Errors report the line.',
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
          const maxBytes = options.maxFetchBytes ?? DEFAULT_MAX_FETCH_BYTES;
          return {
            usesSnapshot: /\bsnapshot\b/.test(fields.code),
            async run(ctx) {
              const { message } = ctx;
              const inputJson = JSON.stringify({ id: message.id, body: message.body ?? null, headers: message.headers, metadata: message.metadata, attachments: message.attachments, snapshot: ctx.snapshot ?? null });
              let outcome;
              try {
                outcome = await options.sandbox.run({
                  tenant: ctx.tenant,
                  code: fields.code,
                  inputJson,
                  timeoutMs: fields.timeoutMs,
                  fetch: (request, deadlineMs) => options.outbound.codeFetch(request, { tenant: ctx.tenant, allowPrivateNetwork, deadlineMs, maxBytes }),
                  signal: ctx.signal,
                });
              } catch (err) {
                const logs = (err as { logs?: Array<{ level: string; text: string }> }).logs;
                for (const l of logs ?? []) ctx.logger.info({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId, console: l.level }, l.text);
                throw err;
              }
              for (const l of outcome.logs) ctx.logger.info({ flowId: ctx.flowId, executionId: ctx.executionId, nodeId: ctx.nodeId, console: l.level }, l.text);
              const bodies: unknown = JSON.parse(outcome.emittedJson);
              if (!Array.isArray(bodies)) throw new StepError('code: the sandbox returned something other than a list of bodies', 'transient');
              return { messages: bodies.map((body) => ({ message: deriveMessage(message, body, randomUUID()) })) };
            },
          };
        },
      }),
    },
  });
}
