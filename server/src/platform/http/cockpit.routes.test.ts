import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { registerCockpitRoutes } from './cockpit.routes.js';
import { createMetrics } from './metrics.js';
import { createHttpServer, type HttpApp } from './server.js';

const html = { accept: 'text/html,application/xhtml+xml' };

async function serve(root: string): Promise<HttpApp> {
  const app = await createHttpServer({ logger: createLogger('silent'), metrics: createMetrics() });
  app.get('/api/v1/things', { config: { permission: 'public' } }, async () => ({ data: [] }));
  await registerCockpitRoutes(app, { root });
  await app.ready();
  return app;
}

describe('cockpit routes', () => {
  let dir: string;
  let app: HttpApp;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cockpit-'));
    fs.mkdirSync(path.join(dir, 'assets'));
    fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><title>Plexus Cockpit</title>');
    fs.writeFileSync(path.join(dir, 'assets', 'app-1a2b.js'), 'console.log(1)');
    fs.writeFileSync(path.join(dir, 'favicon.svg'), '<svg/>');
    app = await serve(dir);
  });

  afterAll(async () => {
    await app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves the app at / and at any page path a browser asks for, never cached', async () => {
    for (const url of ['/', '/flows', '/flows/abc/versions', '/executions?filter=x']) {
      const res = await app.inject({ url, headers: html });
      expect(res.statusCode, url).toBe(200);
      expect(res.headers['content-type']).toContain('text/html');
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.body).toContain('Plexus Cockpit');
    }
  });

  it('serves built files, hashed assets cached for good', async () => {
    const asset = await app.inject({ url: '/assets/app-1a2b.js' });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['cache-control']).toContain('immutable');
    expect(asset.body).toBe('console.log(1)');
    const icon = await app.inject({ url: '/favicon.svg' });
    expect(icon.statusCode).toBe(200);
    expect(icon.headers['cache-control']).toBe('no-cache');
  });

  it('keeps JSON 404s for the API and the other surfaces, missing assets and non-HTML requests', async () => {
    for (const url of ['/api/v1/nothing', '/api', '/hook', '/director/graphql', '/connector/x', '/metrics/x', '/docs/x', '/assets/gone.js']) {
      const res = await app.inject({ url, headers: html });
      expect(res.statusCode, url).toBe(404);
      expect(res.json(), url).toMatchObject({ errors: [{ code: 'ROUTE_NOT_FOUND' }] });
    }
    const api = await app.inject({ url: '/no/such/route' });
    expect(api.statusCode).toBe(404);
    expect(api.json()).toEqual({ errors: [{ code: 'ROUTE_NOT_FOUND', message: 'no route GET /no/such/route' }] });
    expect((await app.inject({ url: '/api/v1/things', headers: html })).json()).toEqual({ data: [] });
  });

  it('never serves a file outside the built folder', async () => {
    const secret = path.join(path.dirname(dir), `${path.basename(dir)}-secret.txt`);
    fs.writeFileSync(secret, 'top secret');
    try {
      for (const url of [`/../${path.basename(secret)}`, `/%2e%2e/${path.basename(secret)}`, '/..%2f..%2fetc%2fpasswd']) {
        const res = await app.inject({ url, headers: html });
        expect(res.body, url).not.toContain('top secret');
        expect(res.body, url).not.toContain('root:');
      }
    } finally {
      fs.rmSync(secret);
    }
  });

  it('says how to build the cockpit when it is not built', async () => {
    const empty = await serve(path.join(dir, 'not-built'));
    try {
      const res = await empty.inject({ url: '/', headers: html });
      expect(res.statusCode).toBe(503);
      expect(res.body).toContain('npm run build -w web');
      expect((await empty.inject({ url: '/api/v1/nothing' })).statusCode).toBe(404);
    } finally {
      await empty.close();
    }
  });
});
