import { describe, expect, it } from 'vitest';
import { summarizeSpec } from './spec';

describe('spec summaries', () => {
  it('lists an OpenAPI document\'s operations, YAML or JSON', () => {
    const yaml = `openapi: 3.0.0
info: { title: Orders, version: '1.2' }
paths:
  /orders:
    get: { summary: List orders, responses: { '200': { description: ok } } }
    post: { operationId: createOrder, responses: { '201': { description: created } } }
  /orders/{id}:
    parameters: []
    delete: { responses: { '204': { description: gone } } }
`;
    expect(summarizeSpec('OPEN_API', 'YAML', yaml)).toEqual({
      title: 'Orders 1.2',
      operations: [
        { method: 'GET', path: '/orders', summary: 'List orders' },
        { method: 'POST', path: '/orders', summary: 'createOrder' },
        { method: 'DELETE', path: '/orders/{id}', summary: '' },
      ],
    });
    const json = JSON.stringify({ swagger: '2.0', info: { title: 'Old' }, paths: { '/a': { put: { summary: 'Put a' } } } });
    expect(summarizeSpec('OPEN_API', 'JSON', json).operations).toEqual([{ method: 'PUT', path: '/a', summary: 'Put a' }]);
  });

  it('lists AsyncAPI 2 channels and AsyncAPI 3 operations', () => {
    const v2 = `asyncapi: 2.6.0
info: { title: Shop events, version: '1' }
channels:
  order/created:
    subscribe: { summary: An order was placed, message: { name: OrderCreated } }
  order/shipped:
    publish: { message: { name: OrderShipped } }
`;
    expect(summarizeSpec('ASYNC_API', 'YAML', v2).operations).toEqual([
      { method: 'subscribe', path: 'order/created', summary: 'An order was placed' },
      { method: 'publish', path: 'order/shipped', summary: 'OrderShipped' },
    ]);
    const v3 = JSON.stringify({
      asyncapi: '3.0.0',
      info: { title: 'v3', version: '1' },
      channels: { created: { address: 'order.created' } },
      operations: { onCreated: { action: 'receive', channel: { $ref: '#/channels/created' }, summary: 'Hear about orders' } },
    });
    expect(summarizeSpec('ASYNC_API', 'JSON', v3).operations).toEqual([{ method: 'receive', path: 'order.created', summary: 'Hear about orders' }]);
  });

  it('lists OData entity sets and types from EDMX', () => {
    const edmx = `<?xml version="1.0"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
  <edmx:DataServices>
    <Schema Namespace="Shop" xmlns="http://docs.oasis-open.org/odata/ns/edm">
      <EntityType Name="Order"><Key><PropertyRef Name="ID"/></Key><Property Name="ID" Type="Edm.Int32"/></EntityType>
      <EntityContainer Name="Container"><EntitySet Name="Orders" EntityType="Shop.Order"/></EntityContainer>
    </Schema>
  </edmx:DataServices>
</edmx:Edmx>`;
    expect(summarizeSpec('ODATA', 'XML', edmx)).toEqual({
      title: 'OData EDMX 4.0',
      operations: [
        { method: 'entity set', path: 'Orders', summary: 'Shop.Order' },
        { method: 'entity type', path: 'Order', summary: 'key ID' },
      ],
    });
  });

  it('says why a document cannot be summarised instead of throwing', () => {
    expect(summarizeSpec('OPEN_API', 'JSON', '{nope').problem).toMatch(/does not parse as JSON/);
    expect(summarizeSpec('OPEN_API', 'YAML', '- a list').problem).toBe('the document is not an object');
    expect(summarizeSpec('ODATA', 'XML', '<a><b></a>').problem).toBe('the document is not well-formed XML');
  });
});
