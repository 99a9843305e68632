/**
 * Worked examples of a flow, shown with `POST /api/v1/flows` in the OpenAPI document and at
 * `/docs`. Each one is saved by the flows e2e tests, so none goes stale.
 */
import type { z } from 'zod';
import type { FlowInput } from './flows.validation.js';

/** What a client sends (defaults may be left out). */
export type FlowExample = z.input<typeof FlowInput>;

/** Webhook → transform → http-request: the first flow most people write. */
export const WEBHOOK_TO_HTTP_EXAMPLE: FlowExample = {
  name: 'Orders to the warehouse',
  description: 'POST /hook/<flow id> with an order; its lines go to the warehouse API.',
  flowSettings: { webhooks: { auth: 'none', respond: 'async' } },
  graph: {
    nodes: [
      { id: 'shape', componentId: 'transform', function: 'jsonata', fields: { expression: '{"orderId": id, "lines": items.{"sku": sku, "qty": quantity}}' } },
      { id: 'send', componentId: 'http-request', function: 'request', fields: { method: 'POST', url: 'https://warehouse.example.com/api/orders' } },
    ],
    edges: [{ source: 'shape', target: 'send' }],
  },
};

/** A cron flow: fired by the scheduler (no webhook), here every morning in Berlin. */
export const CRON_EXAMPLE: FlowExample = {
  name: 'Morning stock report',
  cron: '0 7 * * 1-5',
  timezone: 'Europe/Berlin',
  graph: {
    nodes: [
      { id: 'fetch', componentId: 'http-request', function: 'request', fields: { method: 'GET', url: 'https://warehouse.example.com/api/stock' } },
      { id: 'report', componentId: 'log', function: 'write', fields: { level: 'info', expression: '{"items": $count(body.items)}' } },
    ],
    edges: [{ source: 'fetch', target: 'report' }],
  },
};

/**
 * A flow with a credential: the http-request step names a secret by id (`credentialsId`, made
 * with `POST /api/v1/secrets`, e.g. `{"name": "crm", "type": "apiKey", "value": {"key": "…",
 * "headerName": "X-API-Key"}}`); the flow holds only the id.
 */
export const CREDENTIAL_EXAMPLE: FlowExample = {
  name: 'Leads to the CRM',
  flowSettings: { webhooks: { auth: 'bearer' } },
  graph: {
    nodes: [
      { id: 'lead', componentId: 'transform', function: 'jsonata', fields: { expression: '{"email": email, "source": "website"}' } },
      {
        id: 'crm',
        componentId: 'http-request',
        function: 'request',
        credentialsId: '00000000-0000-0000-0000-000000000000',
        fields: { method: 'POST', url: 'https://crm.example.com/api/leads' },
      },
    ],
    edges: [{ source: 'lead', target: 'crm' }],
  },
};

export const FLOW_EXAMPLES: readonly FlowExample[] = [WEBHOOK_TO_HTTP_EXAMPLE, CRON_EXAMPLE, CREDENTIAL_EXAMPLE];
