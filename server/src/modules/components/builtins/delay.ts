/**
 * `delay` / `wait`: hands the message on after a pause. The pause is a delivery delay on the
 * next steps' queues, not a sleeping handler: it survives restarts and holds no worker.
 */
import { z } from 'zod';
import { builtinComponent, builtinFunction } from './define.js';

/** One week: longer waits belong to a scheduled flow. */
export const MAX_DELAY_MS = 7 * 24 * 3_600_000;

export const delayComponent = builtinComponent({
  name: 'delay',
  title: 'Delay',
  description: 'Hands the message on after a pause.',
  functions: {
    wait: builtinFunction({
      title: 'Wait',
      description: 'Passes the message on unchanged after `delayMs` milliseconds (at most one week). The wait is durable: a restart does not shorten or lose it.',
      fields: z.strictObject({
        delayMs: z.number().int().min(0).max(MAX_DELAY_MS).describe('milliseconds to wait'),
      }),
      prepare(fields) {
        return {
          usesSnapshot: false,
          async run({ message }) {
            return { messages: [{ message, delayMs: fields.delayMs }] };
          },
        };
      },
    }),
  },
});
