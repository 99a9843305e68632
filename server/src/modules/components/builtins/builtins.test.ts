import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../platform/logger.js';
import { StepError } from '../components.descriptor.js';
import { bodies, context, message, runOnce } from '../components.testing.js';
import { delayComponent } from './delay.js';
import { filterComponent } from './filter.js';
import { logComponent } from './log.js';
import { splitComponent } from './split.js';
import { transformComponent } from './transform.js';
import { webhookReplyComponent } from './webhook-reply.js';

const jsonata = transformComponent.fn('jsonata');
const condition = filterComponent.fn('condition');
const each = splitComponent.fn('each');

describe('transform/jsonata', () => {
  it('makes the expression result the next body, with $headers and $metadata bound', async () => {
    const out = await runOnce(jsonata, { expression: '{"name": first & " " & last}' }, { first: 'Ada', last: 'Lovelace' });
    expect(bodies(out)).toEqual([{ name: 'Ada Lovelace' }]);
    const step = await jsonata!.prepare({ expression: '{"via": $headers.source, "run": $metadata.run}' }, { logger: createLogger('silent') });
    const res = await step.run(context(message({}, { headers: { source: 'crm' }, metadata: { run: 7 } })));
    expect(res.messages[0]!.message.body).toEqual({ via: 'crm', run: 7 });
  });

  it('keeps headers and metadata on the new message and gives it a new id', async () => {
    const step = await jsonata!.prepare({ expression: 'a + 1' }, { logger: createLogger('silent') });
    const input = message({ a: 1 }, { headers: { h: 'x' }, metadata: { m: 1 } });
    const out = (await step.run(context(input))).messages[0]!.message;
    expect(out).toMatchObject({ body: 2, headers: { h: 'x' }, metadata: { m: 1 } });
    expect(out.id).not.toBe(input.id);
  });

  it('turns "no result" into a null body, and plain arrays out of JSONata sequences', async () => {
    expect(bodies(await runOnce(jsonata, { expression: 'missing' }, { a: 1 }))).toEqual([null]);
    const [seq] = bodies(await runOnce(jsonata, { expression: 'items.id' }, { items: [{ id: 1 }, { id: 2 }] }));
    expect(Array.isArray(seq)).toBe(true);
    expect(JSON.stringify(seq)).toBe('[1,2]');
  });

  it('refuses an invalid expression when the step is prepared, naming the field and the position', async () => {
    await expect(jsonata!.prepare({ expression: '{"a": ' }, { logger: createLogger('silent') })).rejects.toThrow(/fields\.expression: invalid JSONata: .*position/);
    await expect(jsonata!.prepare({}, { logger: createLogger('silent') })).rejects.toThrow(/fields\.expression/);
    await expect(jsonata!.prepare({ expression: 'a', extra: 1 }, { logger: createLogger('silent') })).rejects.toThrow(/extra/);
  });

  it('fails the run as a user error when evaluation fails, and stops a runaway expression', async () => {
    const err = await runOnce(jsonata, { expression: '$number("x") + $undefinedFunction()' }, {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StepError);
    expect((err as StepError).kind).toBe('user');
    const loop = await runOnce(jsonata, { expression: '($f := function($n){ $f($n + 1) }; $f(0))' }, {}).catch((e: unknown) => e);
    expect((loop as StepError).kind).toBe('user');
    expect((loop as StepError).message).toMatch(/stack|timeout|deep/i);
  });
});

describe('filter/condition', () => {
  it('passes the message unchanged when the expression is truthy and drops it otherwise', async () => {
    const pass = await runOnce(condition, { expression: 'amount > 100' }, { amount: 150 });
    expect(bodies(pass)).toEqual([{ amount: 150 }]);
    expect((await runOnce(condition, { expression: 'amount > 100' }, { amount: 50 })).messages).toEqual([]);
  });

  it('uses JSONata truthiness: empty strings, arrays, objects and missing values are false', async () => {
    for (const body of [{ v: '' }, { v: [] }, { v: {} }, {}, { v: 0 }, { v: null }]) {
      expect((await runOnce(condition, { expression: 'v' }, body)).messages, JSON.stringify(body)).toHaveLength(0);
    }
    for (const body of [{ v: 'x' }, { v: [0, 1] }, { v: { a: 1 } }, { v: 1 }, { v: true }]) {
      expect((await runOnce(condition, { expression: 'v' }, body)).messages, JSON.stringify(body)).toHaveLength(1);
    }
  });
});

describe('split/each', () => {
  it('emits one message per element with its index and the count in metadata', async () => {
    const out = await runOnce(each, { expression: 'orders' }, { orders: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] });
    expect(bodies(out)).toEqual([{ id: 'a' }, { id: 'b' }, { id: 'c' }]);
    expect(out.messages.map((m) => m.message.metadata.split)).toEqual([
      { index: 0, count: 3 },
      { index: 1, count: 3 },
      { index: 2, count: 3 },
    ]);
    expect(new Set(out.messages.map((m) => m.message.id)).size).toBe(3);
  });

  it('splits the body itself by default; a single value is one message, nothing is none', async () => {
    expect(bodies(await runOnce(each, {}, [1, 2]))).toEqual([1, 2]);
    expect(bodies(await runOnce(each, { expression: 'one' }, { one: { x: 1 } }))).toEqual([{ x: 1 }]);
    expect((await runOnce(each, { expression: 'none' }, {})).messages).toEqual([]);
  });
});

describe('delay/wait', () => {
  it('passes the message on with a delivery delay instead of sleeping', async () => {
    const started = Date.now();
    const out = await runOnce(delayComponent.fn('wait'), { delayMs: 60_000 }, { a: 1 });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(out.messages).toHaveLength(1);
    expect(out.messages[0]!.delayMs).toBe(60_000);
    await expect(runOnce(delayComponent.fn('wait'), { delayMs: -1 }, {})).rejects.toThrow(/fields\.delayMs/);
  });
});

describe('log/write', () => {
  it('writes the body to the hub log with the flow, execution and node, and passes the message on', async () => {
    const lines: string[] = [];
    const logger = createLogger(
      'info',
      new Writable({
        write(chunk: Buffer, _enc, cb) {
          lines.push(chunk.toString());
          cb();
        },
      }),
    );
    const out = await runOnce(logComponent.fn('write'), { level: 'warn', expression: 'order', text: 'order seen' }, { order: { id: 42 }, ignored: true }, { logger });
    expect(bodies(out)).toEqual([{ order: { id: 42 }, ignored: true }]);
    const line = JSON.parse(lines.at(-1)!) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 40, msg: 'order seen', flowId: 'flow-1', executionId: 'exec-1', nodeId: 'node-1', logged: '{"id":42}' });
  });
});

describe('webhook-reply/reply', () => {
  it('answers with status, headers and a JSONata body, and passes the message on', async () => {
    const out = await runOnce(webhookReplyComponent.fn('reply'), { status: 201, headers: { 'X-Order': 'ok' }, body: '{"id": id, "accepted": true}' }, { id: 7, rest: 1 });
    expect(out.reply).toEqual({ status: 201, headers: { 'x-order': 'ok' }, body: { id: 7, accepted: true } });
    expect(bodies(out)).toEqual([{ id: 7, rest: 1 }]);
    const plain = await runOnce(webhookReplyComponent.fn('reply'), {}, { echo: true });
    expect(plain.reply).toEqual({ status: 200, headers: {}, body: { echo: true } });
  });

  it('refuses an out-of-range status and an invalid header name', async () => {
    await expect(runOnce(webhookReplyComponent.fn('reply'), { status: 99 }, {})).rejects.toThrow(/fields\.status/);
    await expect(runOnce(webhookReplyComponent.fn('reply'), { headers: { 'bad header': 'x' } }, {})).rejects.toThrow(/fields\.headers/);
  });
});
