/**
 * Where the real services for tests are. Every storage/bus test runs on embedded PGlite and on
 * PostgreSQL (+ NATS for the bus). When a service does not answer: under CI (`CI` set) the
 * test fails; on a developer machine it is skipped with a loud message.
 */
import net from 'node:net';

export const TEST_DATABASE_URL = process.env.PLEXUS_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_NATS_URL = process.env.PLEXUS_TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
export const IS_CI = Boolean(process.env.CI);

function hostPort(url: string, defaultPort: number): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) };
}

async function answers(url: string, defaultPort: number): Promise<boolean> {
  const { host, port } = hostPort(url, defaultPort);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function available(name: string, url: string, port: number): Promise<boolean> {
  if (await answers(url, port)) return true;
  const msg = `${name} at ${url} does not answer`;
  if (IS_CI) throw new Error(`${msg}; under CI every service must run (see .ci/run)`);
  console.warn(`\n*** SKIPPING ${name} tests: ${msg} ***\n`);
  return false;
}

export const hasPostgres = await available('PostgreSQL', TEST_DATABASE_URL, 5432);
export const hasNats = await available('NATS', TEST_NATS_URL, 4222);
