/** `log` / `write`: writes the message (or a JSONata selection of it) to the hub's log, and passes it on. */
import { z } from 'zod';
import { compileExpression } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

/** A log line carries at most this much of the body. */
const MAX_LOGGED_CHARS = 4_096;

export const logComponent = builtinComponent({
  name: 'log',
  title: 'Log',
  description: 'Writes the message to the hub log and passes it on unchanged.',
  functions: {
    write: builtinFunction({
      title: 'Write',
      description:
        'Logs the message body (or what `expression` selects from it) at `level`, with the flow, execution and node ids, cut to 4 KiB; the message goes on unchanged.',
      fields: z.strictObject({
        level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
        expression: z.string().min(1).max(100_000).optional().describe('JSONata over the body; default: the whole body'),
        text: z.string().max(1_000).optional().describe('a fixed text for the log line'),
      }),
      prepare(fields) {
        const expr = fields.expression ? compileExpression(fields.expression, 'fields.expression') : undefined;
        return {
          usesSnapshot: false,
          pure: true,
          async run({ message, logger, flowId, executionId, nodeId }) {
            const value = expr ? await expr.evaluate(message.body, { headers: message.headers, metadata: message.metadata }) : message.body;
            let logged = JSON.stringify(value) ?? 'undefined';
            if (logged.length > MAX_LOGGED_CHARS) logged = `${logged.slice(0, MAX_LOGGED_CHARS)}… (${logged.length} chars)`;
            logger[fields.level]({ flowId, executionId, nodeId, messageId: message.id, logged }, fields.text ?? 'flow log step');
            return { messages: [{ message }] };
          },
        };
      },
    }),
  },
});
