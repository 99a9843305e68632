/** Liveness, readiness, metrics (behind `metrics.read`) and the OpenAPI document. */
import { z } from 'zod';
import type { HttpApp } from './server.js';
import type { Metrics } from './metrics.js';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<void>;
}

const CHECK_TIMEOUT_MS = 2_000;

async function runCheck(c: ReadinessCheck): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      c.check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    return 'ok';
  } catch (err) {
    return (err as Error).message || 'failed';
  } finally {
    clearTimeout(timer);
  }
}

export async function registerHealthRoutes(app: HttpApp, metrics: Metrics, checks: ReadinessCheck[]): Promise<void> {
  app.get('/healthz', { config: { permission: 'public' }, schema: { tags: ['health'], summary: 'Liveness: 200 while the process lives' } }, async () => ({
    status: 'ok',
  }));

  app.get(
    '/readyz',
    {
      config: { permission: 'public' },
      schema: {
        tags: ['health'],
        summary: 'Readiness: 200 only while the database and the bus answer',
        response: {
          200: z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.string()) }),
          503: z.object({
            status: z.literal('unavailable'),
            checks: z.record(z.string(), z.string()),
            errors: z.array(z.object({ code: z.string(), message: z.string() })),
          }),
        },
      },
    },
    async (_req, reply) => {
      const results = await Promise.all(checks.map(async (c) => [c.name, await runCheck(c)] as const));
      const checksOut = Object.fromEntries(results);
      const failed = results.filter(([, r]) => r !== 'ok');
      if (failed.length === 0) return reply.code(200).send({ status: 'ready' as const, checks: checksOut });
      return reply.code(503).send({
        status: 'unavailable' as const,
        checks: checksOut,
        errors: failed.map(([name, r]) => ({ code: 'UNAVAILABLE', message: `${name}: ${r}` })),
      });
    },
  );

  // Every tenant's traffic is in there: a token holding `metrics.read` (platform admins only) reads it.
  app.get(
    '/metrics',
    {
      config: { permission: 'metrics.read' },
      schema: { tags: ['health'], summary: 'Prometheus metrics (Bearer token with permission metrics.read)', security: [{ bearer: [] }] },
    },
    async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );

  app.get('/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
}
