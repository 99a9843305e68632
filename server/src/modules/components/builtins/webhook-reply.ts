/**
 * `webhook-reply` / `reply`: answers the sync webhook call that started the execution
 * (`flowSettings.webhooks.respond: "sync"`), and passes the message on so the flow can go on
 * after answering. Without a waiting caller the reply is stored and expires unused.
 */
import { z } from 'zod';
import { compileExpression } from '../components.expressions.js';
import { builtinComponent, builtinFunction } from './define.js';

export const webhookReplyComponent = builtinComponent({
  name: 'webhook-reply',
  title: 'Webhook reply',
  description: 'Answers the webhook call that started the execution.',
  functions: {
    reply: builtinFunction({
      title: 'Reply',
      description:
        'Answers a sync webhook call with `status`, `headers` and a body: `body` (JSONata over the message body, `$headers` and `$metadata` bound) or else the message body. The message goes on unchanged.',
      fields: z.strictObject({
        status: z.number().int().min(200).max(599).default(200),
        headers: z.record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'must be an HTTP header name'), z.string().max(8_192)).default({}),
        body: z.string().min(1).max(100_000).optional().describe('JSONata over the body; default: the body itself'),
      }),
      prepare(fields) {
        const bodyExpr = fields.body ? compileExpression(fields.body, 'fields.body') : undefined;
        const headers = Object.fromEntries(Object.entries(fields.headers).map(([k, v]) => [k.toLowerCase(), v]));
        return {
          usesSnapshot: false,
          async run({ message }) {
            const body = bodyExpr ? await bodyExpr.evaluate(message.body, { headers: message.headers, metadata: message.metadata }) : message.body;
            return { messages: [{ message }], reply: { status: fields.status, headers, body: body === undefined ? null : body } };
          },
        };
      },
    }),
  },
});
