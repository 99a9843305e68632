/** `transform` / `jsonata`: the next body is a JSONata expression over the message body. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { deriveMessage } from '../components.descriptor.js';
import { compileExpression } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

export const transformComponent = builtinComponent({
  name: 'transform',
  title: 'Transform',
  description: 'Reshapes the message body with a JSONata expression.',
  functions: {
    jsonata: builtinFunction({
      title: 'JSONata',
      description: 'Evaluates `expression` with the message body as input (`$headers` and `$metadata` bound); the result is the next body.',
      fields: z.strictObject({
        expression: z.string().min(1).max(100_000).describe('JSONata; e.g. {"name": firstName & " " + lastName}'),
      }),
      prepare(fields) {
        const expr = compileExpression(fields.expression, 'fields.expression');
        return {
          usesSnapshot: false,
          pure: true,
          async run({ message }) {
            const body = await expr.evaluate(message.body, { headers: message.headers, metadata: message.metadata });
            // JSONata answers "nothing" with undefined; a body is JSON, so nothing is null.
            return { messages: [{ message: deriveMessage(message, body === undefined ? null : body, randomUUID()) }] };
          },
        };
      },
    }),
  },
});
