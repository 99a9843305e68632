/** `filter` / `condition`: passes the message on only when a JSONata expression is truthy. */
import { z } from 'zod';
import { compileExpression, isTruthy } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

export const filterComponent = builtinComponent({
  name: 'filter',
  title: 'Filter',
  description: 'Passes the message on only when a condition holds.',
  functions: {
    condition: builtinFunction({
      title: 'Condition',
      description: 'Evaluates `expression` (JSONata over the body, `$headers` and `$metadata` bound); a truthy result passes the message on unchanged, anything else drops it.',
      fields: z.strictObject({
        expression: z.string().min(1).max(100_000).describe('JSONata; e.g. amount > 100'),
      }),
      prepare(fields) {
        const expr = compileExpression(fields.expression, 'fields.expression');
        return {
          usesSnapshot: false,
          pure: true,
          async run({ message }) {
            const verdict = await expr.evaluate(message.body, { headers: message.headers, metadata: message.metadata });
            return { messages: isTruthy(verdict) ? [{ message }] : [] };
          },
        };
      },
    }),
  },
});
