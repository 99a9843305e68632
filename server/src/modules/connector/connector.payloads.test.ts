/** Payload schemas of AsyncAPI 2 and 3 documents, JSON and YAML, as event data is checked against them. */
import { describe, expect, it } from 'vitest';
import { PayloadSchemas } from './connector.payloads.js';

const ORDER = { type: 'object', required: ['id'], properties: { id: { type: 'string' }, qty: { type: 'integer', minimum: 1 } } };

describe('PayloadSchemas', () => {
  const schemas = new PayloadSchemas();

  it('AsyncAPI 2 (JSON): publish / subscribe messages, oneOf, and local $refs', () => {
    const spec = JSON.stringify({
      asyncapi: '2.6.0',
      info: { title: 't', version: '1' },
      channels: { orders: { publish: { message: { oneOf: [{ $ref: '#/components/messages/Order' }, { payload: { type: 'string' } }] } } } },
      components: { messages: { Order: { payload: ORDER } } },
    });
    const check = schemas.checkFor('d1', spec);
    expect(check({ id: 'a', qty: 2 })).toBeUndefined();
    expect(check('just a string')).toBeUndefined();
    expect(check({ id: 'a', qty: 0 })).toMatch(/^data\.qty: must be >= 1/);
    expect(check(42)).toMatch(/^data: /);
  });

  it('AsyncAPI 3 (YAML): channel messages and component messages', () => {
    const spec = ['asyncapi: 3.0.0', 'info: { title: t, version: "1" }', 'channels:', '  orders:', '    messages:', '      created:', '        payload:', '          type: object', '          required: [id]', '          properties: { id: { type: string } }'].join('\n');
    const check = schemas.checkFor('d2', spec);
    expect(check({ id: 'x' })).toBeUndefined();
    expect(check({})).toMatch(/must have required property 'id'/);
  });

  it('accepts any data when there is nothing to check against: no spec, a placeholder, garbage', () => {
    for (const spec of [null, '{"asyncapi":"2.0.0"}', 'not: [valid', '{"channels": {"x": {"publish": {"message": {"payload": {"type": "nonsense-type"}}}}}}']) {
      expect(schemas.checkFor(`d-${String(spec)}`, spec)({ anything: true })).toBeUndefined();
    }
  });
});
