/** `split` / `each`: one message per element of an array. */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { deriveMessage, StepError } from '../components.descriptor.js';
import { compileExpression } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

/** A split fans out into this many messages at most; more is almost surely a mistake. */
export const MAX_SPLIT = 100_000;

export const splitComponent = builtinComponent({
  name: 'split',
  title: 'Split',
  description: 'Emits one message per element of an array.',
  functions: {
    each: builtinFunction({
      title: 'Each',
      description:
        'Emits one message per element of the array selected by `expression` (JSONata over the body; default: the body itself). Each message carries `metadata.split = {index, count}`. A value that is not an array is emitted as one message; nothing selected emits nothing.',
      fields: z.strictObject({
        expression: z.string().min(1).max(100_000).optional().describe('JSONata selecting the array; e.g. items'),
      }),
      prepare(fields) {
        const expr = fields.expression ? compileExpression(fields.expression, 'fields.expression') : undefined;
        return {
          usesSnapshot: false,
          pure: true,
          async run({ message }) {
            const selected = expr ? await expr.evaluate(message.body, { headers: message.headers, metadata: message.metadata }) : message.body;
            if (selected === undefined) return { messages: [] };
            const items = Array.isArray(selected) ? selected : [selected];
            if (items.length > MAX_SPLIT) throw new StepError(`split: ${items.length} elements, more than the ${MAX_SPLIT} allowed`, 'user');
            const count = items.length;
            return {
              messages: items.map((item, index) => {
                const out = deriveMessage(message, item, randomUUID());
                out.metadata = { ...message.metadata, split: { index, count } };
                return { message: out };
              }),
            };
          },
        };
      },
    }),
  },
});
