/**
 * Compass's own example requests (test/fixtures/compass-director-examples) are the acceptance
 * test of the Director's schema: each one, unmodified apart from ids, must succeed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dbTargets } from '../helpers/db.js';
import { createTestHub, type TestHub } from '../helpers/hub.js';
import { gql, ok } from '../helpers/director.js';

const DIR = path.resolve(import.meta.dirname, '../fixtures/compass-director-examples');
const PLACEHOLDER = 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa';

/** The hub of the target being run (one per target, in turn). */
let hub: TestHub;


/** Fresh objects for the examples to act on, so each example runs alone. */
async function fixtures(): Promise<Record<string, string>> {
  const n = Math.random().toString(36).slice(2, 8);
  const app = (await ok(hub, `mutation { r: registerApplication(in: {name: "fx-${n}", labels: {scenarios: ["DEFAULT"]}, apiDefinitions: [{name: "a", targetURL: "http://x.example/a", spec: {type: OPEN_API, format: JSON, fetchRequest: {url: "http://127.0.0.1:1/never"}}}], eventDefinitions: [{name: "e", spec: {type: ASYNC_API, format: YAML, fetchRequest: {url: "http://127.0.0.1:1/never"}}}], documents: [{title: "d", displayName: "d", description: "d", format: MARKDOWN, data: "x"}], webhooks: [{type: CONFIGURATION_CHANGED, url: "http://127.0.0.1:1/hook"}]}) { id apiDefinitions { data { id } } eventDefinitions { data { id } } documents { data { id } } webhooks { id } } }`)).r;
  const rt = (await ok(hub, `mutation { r: registerRuntime(in: {name: "rt-${n}", labels: {scenarios: ["DEFAULT"]}}) { id } }`)).r;
  await ok(hub, `mutation { setRuntimeLabel(runtimeID: "${rt.id}", key: "runtime/event_service_url", value: "https://events.example") { key } }`);
  await ok(hub, `mutation { setApplicationLabel(applicationID: "${app.id}", key: "test", value: "val") { key } }`);
  return { app: app.id, api: app.apiDefinitions.data[0].id, event: app.eventDefinitions.data[0].id, doc: app.documents.data[0].id, webhook: app.webhooks[0].id, runtime: rt.id };
}

/** Replaces placeholder ids with the object the example's operation acts on. */
function bind(text: string, fx: Record<string, string>): string {
  return text.replace(/(\w+)\s*:\s*"aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"/g, (_m, arg: string) => {
    const op = /\b(\w+)\s*\(/.exec(text.slice(text.indexOf('result:') + 7))?.[1] ?? '';
    const id =
      arg === 'applicationID' || arg === 'appID' ? fx.app
      : arg === 'runtimeID' ? fx.runtime
      : arg === 'webhookID' ? fx.webhook
      : /APIDefinition|apiDefinition/.test(op) || arg === 'apiID' ? fx.api
      : /EventDefinition|eventDefinition/.test(op) ? fx.event
      : /Document/.test(op) ? fx.doc
      : /Runtime|runtime/.test(op) ? fx.runtime
      : fx.app;
    return `${arg}: "${id}"`;
  });
}

const examples = fs.readdirSync(DIR).filter((f) => f.endsWith('.graphql')).sort();

describe.each(dbTargets)('Compass example requests on %s', (target) => {
  beforeAll(async () => {
    hub = await createTestHub({ target });
  });
  afterAll(async () => {
    await hub?.close();
  });

  describe('Compass example requests', () => {
    it('there are the examples of every operation kept', () => {
      expect(examples.length).toBeGreaterThanOrEqual(40);
    });

    it.each(examples)('%s succeeds', async (file) => {
      let text = fs.readFileSync(path.join(DIR, file), 'utf8');
      const fx = await fixtures();
      // Nested placeholders (an application's apiDefinition(id: …)) name its API or event.
      text = bind(text, fx).replace(new RegExp(`apiDefinition\\(id: "${PLACEHOLDER}"\\)`, 'g'), `apiDefinition(id: "${fx.api}")`);
      text = text.replace(/apiDefinition\(id: "[^"]*"\)/, `apiDefinition(id: "${fx.api}")`).replace(/eventDefinition\(id: "[^"]*"\)/, `eventDefinition(id: "${fx.event}")`);
      // The one cursor in the examples is Compass's own; ours are opaque too, so take a real one.
      if (text.includes('RHBLdEo0ajlqRHE5')) {
        const first = (await ok(hub, '{ runtimes(first: 1) { pageInfo { endCursor } } }')).runtimes.pageInfo.endCursor;
        text = text.replace('RHBLdEo0ajlqRHE5', first);
      }
      if (file.startsWith('delete-label-definition')) {
        await ok(hub, `mutation { deleteApplicationLabel(applicationID: "${fx.app}", key: "test") { key } }`).catch(() => undefined);
        await ok(hub, 'mutation { createLabelDefinition(in: {key: "foo"}) { key } }').catch(() => undefined);
        text = text.replace(/key: "[^"]*"/, 'key: "foo"');
        await ok(hub, 'mutation { deleteLabelDefinition(key: "foo", deleteRelatedLabels: true) { key } }').catch(() => undefined);
        await ok(hub, 'mutation { createLabelDefinition(in: {key: "foo"}) { key } }');
      }
      if (file.startsWith('delete-application-label')) await ok(hub, `mutation { setApplicationLabel(applicationID: "${fx.app}", key: "brand-new-label", value: ["aaa", "bbb"]) { key } }`);
      if (file.startsWith('create-label-definition')) await ok(hub, 'mutation { deleteLabelDefinition(key: "foo", deleteRelatedLabels: true) { key } }').catch(() => undefined);
      if (file.startsWith('update-label-definition')) await ok(hub, 'mutation { createLabelDefinition(in: {key: "foo"}) { key } }').catch(() => undefined);
      if (file.startsWith('register-application')) await ok(hub, '{ applications(filter: {key: "name", query: "\\"wordpress\\""}) { data { id } } }').then(async (r) => {
        for (const a of r.applications.data) await ok(hub, `mutation { unregisterApplication(id: "${a.id}") { id } }`);
      });
      const r = await gql(hub, text);
      expect(r.errors, `${file}: ${JSON.stringify(r.errors)}`).toBeUndefined();
      expect(r.status).toBe(200);
      const data = r.data.result ?? Object.values(r.data)[0];
      expect(data).toBeDefined();
    });
  });
});
