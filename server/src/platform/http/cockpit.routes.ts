/**
 * The cockpit: the built web UI (`web/dist`) at `/`. Its pages are routes of the browser app, so a
 * browser asking for any page path (`/flows/abc`) gets `index.html` and the app takes it from
 * there; hashed assets are cached for good. Paths that belong to the API and the other
 * surfaces keep their JSON 404, and so does any request that does not ask for HTML.
 */
import fs from 'node:fs';
import path from 'node:path';
import fastifyStatic from '@fastify/static';
import { AppError } from '../errors.js';
import type { HttpApp } from './server.js';

/** First path segments that are never the cockpit's: an unknown path there is a JSON 404. */
export const NON_COCKPIT_PREFIXES = ['api', 'hook', 'director', 'connector', 'provisioner', 'events', 'metrics', 'docs', 'openapi.json', 'healthz', 'readyz'];

export interface CockpitFiles {
  /** The built web UI (`web/dist`); may not exist (not built yet). */
  root: string;
}

const ONE_YEAR_S = 365 * 86_400;

function asksForHtml(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/html');
}

export async function registerCockpitRoutes(app: HttpApp, files: CockpitFiles): Promise<void> {
  const indexFile = path.join(files.root, 'index.html');
  // serve:false: we own the routes (and their permission); the plugin only streams files safely.
  await app.register(fastifyStatic, { root: files.root, serve: false });

  app.get('/*', { config: { permission: 'public' }, schema: { hide: true } }, async (req, reply) => {
    const wanted = (req.params as { '*': string })['*'];
    const first = wanted.split('/')[0] ?? '';
    const notFound = (): AppError => new AppError('ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`);
    if (NON_COCKPIT_PREFIXES.includes(first)) throw notFound();
    if (!fs.existsSync(indexFile)) {
      if (!asksForHtml(req.headers.accept) && wanted !== '') throw notFound();
      return reply
        .code(503)
        .type('text/plain; charset=utf-8')
        .send('The Plexus hub is running, but the cockpit is not built: run `npm run build -w web` (npm ci does it). The API is at /docs.\n');
    }
    const file = path.resolve(files.root, wanted);
    const inside = file.startsWith(files.root + path.sep);
    if (wanted !== '' && inside && fs.statSync(file, { throwIfNoEntry: false })?.isFile()) {
      // Vite names assets by their content hash: a changed file is a new name.
      const immutable = wanted.startsWith('assets/');
      void reply.header('cache-control', immutable ? `public, max-age=${ONE_YEAR_S}, immutable` : 'no-cache');
      return reply.sendFile(wanted, { cacheControl: false });
    }
    // A missing asset is a 404, not the app: a stale page would otherwise load HTML as a script.
    if (first === 'assets' || (wanted !== '' && !asksForHtml(req.headers.accept))) throw notFound();
    return reply.header('cache-control', 'no-cache').sendFile('index.html', { cacheControl: false });
  });
}
