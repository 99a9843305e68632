import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.js';

describe('loadConfig', () => {
  it('sizes the embedded database for a small hub unless told otherwise, and knows when npm started it', () => {
    expect(loadConfig({}).embeddedDb).toEqual({ sharedBufferBytes: 16 * 1024 * 1024, optimizeWasm: false });
    expect(loadConfig({ PLEXUS_EMBEDDED_DB_BUFFER_BYTES: '67108864', PLEXUS_EMBEDDED_DB_WASM_OPTIMIZE: 'true' }).embeddedDb).toEqual({ sharedBufferBytes: 64 * 1024 * 1024, optimizeWasm: true });
    expect(() => loadConfig({ PLEXUS_EMBEDDED_DB_BUFFER_BYTES: '4096' })).toThrow(/PLEXUS_EMBEDDED_DB_BUFFER_BYTES="4096" must be at least 1048576/);
    expect(() => loadConfig({ PLEXUS_EMBEDDED_DB_WASM_OPTIMIZE: 'yes' })).toThrow(/PLEXUS_EMBEDDED_DB_WASM_OPTIMIZE="yes" must be true or false/);
    expect(loadConfig({}).launchedByNpm).toBe(false);
    expect(loadConfig({ npm_command: 'start' }).launchedByNpm).toBe(true);
  });

  it('gives the documented defaults', () => {
    const c = loadConfig({});
    expect(c.http).toEqual({ host: '127.0.0.1', port: 8080, mtlsPort: 8443, grpcPort: 9090, trustProxy: false });
    expect(c.db.url).toBeUndefined();
    expect(c.bus.natsUrl).toBeUndefined();
    expect(c.executions.retentionMs).toBe(7 * 86_400_000);
    expect(c.dataDir).toMatch(/\.plexus$/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('names every bad variable and the problem in one error', () => {
    expect(() => loadConfig({ PLEXUS_HTTP_PORT: 'not-a-port', PLEXUS_DATABASE_URL: 'mysql://x', PLEXUS_BUS_LEASE: 'soon' })).toThrow(
      /PLEXUS_HTTP_PORT="not-a-port" must be a port number.*PLEXUS_DATABASE_URL="mysql:\/\/x" must be a postgres:\/\/.*PLEXUS_BUS_LEASE="soon" must be a duration/,
    );
    expect(() => loadConfig({ PLEXUS_HTTP_PORT: '70000' })).toThrow(/PLEXUS_HTTP_PORT="70000" must be between 0 and 65535/);
  });

  it('parses durations and treats empty variables as unset', () => {
    const c = loadConfig({ PLEXUS_EXECUTION_RETENTION: '12h', PLEXUS_BUS_LEASE: '500ms', PLEXUS_DATABASE_URL: '' });
    expect(c.executions.retentionMs).toBe(12 * 3_600_000);
    expect(c.bus.leaseMs).toBe(500);
    expect(c.db.url).toBeUndefined();
  });

  it('reads PLEXUS_TRUST_PROXY as true/false, a hop count, or proxy addresses and CIDRs', () => {
    expect(loadConfig({ PLEXUS_TRUST_PROXY: 'true' }).http.trustProxy).toBe(true);
    expect(loadConfig({ PLEXUS_TRUST_PROXY: 'false' }).http.trustProxy).toBe(false);
    expect(loadConfig({ PLEXUS_TRUST_PROXY: '2' }).http.trustProxy).toBe(2);
    expect(loadConfig({ PLEXUS_TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1' }).http.trustProxy).toEqual(['10.0.0.0/8', '127.0.0.1', '::1']);
    expect(() => loadConfig({ PLEXUS_TRUST_PROXY: '10.0.0.0/33' })).toThrow(/PLEXUS_TRUST_PROXY="10.0.0.0\/33" must be true, false, a hop count.*"10.0.0.0\/33" is none/);
    expect(() => loadConfig({ PLEXUS_TRUST_PROXY: 'proxy.local' })).toThrow(/PLEXUS_TRUST_PROXY="proxy.local"/);
  });

  it('denies private networks to steps by default; PLEXUS_STEPS_ALLOWED_HOSTS names the exceptions', () => {
    expect(loadConfig({}).outbound).toEqual({ allowPrivateNetwork: false, allowedHosts: [] });
    expect(loadConfig({ PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK: 'true' }).outbound.allowPrivateNetwork).toBe(true);
    expect(loadConfig({ PLEXUS_STEPS_ALLOWED_HOSTS: 'Billing.Internal, *.svc.cluster.local,10.0.0.0/8,[fd00::1]' }).outbound.allowedHosts).toEqual(['billing.internal', '*.svc.cluster.local', '10.0.0.0/8', 'fd00::1']);
    expect(() => loadConfig({ PLEXUS_STEPS_ALLOWED_HOSTS: 'ok.internal,10.0.0.0/40' })).toThrow(/PLEXUS_STEPS_ALLOWED_HOSTS="ok.internal,10.0.0.0\/40" must be host names, IP addresses or CIDRs separated by commas \("10.0.0.0\/40" is not/);
    expect(() => loadConfig({ PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK: 'yes' })).toThrow(/PLEXUS_STEPS_ALLOW_PRIVATE_NETWORK="yes" must be true or false/);
  });

  it('reads the default tenant limits and the process-wide in-flight budget', () => {
    expect(loadConfig({}).limits).toEqual({
      defaults: {
        webhookRequestsPerSecond: 200,
        webhookBytesPerSecond: 20 * 1024 * 1024,
        webhookInFlightBytes: 32 * 1024 * 1024,
        concurrentExecutions: 100,
        messagesPerExecution: 10_000,
        codeSlots: 1,
      },
      webhookInFlightBytesTotal: 128 * 1024 * 1024,
    });
    const c = loadConfig({ PLEXUS_LIMITS_MESSAGES_PER_EXECUTION: '500', PLEXUS_WEBHOOK_IN_FLIGHT_BYTES: '4096' });
    expect(c.limits.defaults.messagesPerExecution).toBe(500);
    expect(c.limits.webhookInFlightBytesTotal).toBe(4096);
    expect(() => loadConfig({ PLEXUS_LIMITS_WEBHOOK_IN_FLIGHT_BYTES: '10', PLEXUS_LIMITS_CODE_SLOTS: '0' })).toThrow(
      /PLEXUS_LIMITS_WEBHOOK_IN_FLIGHT_BYTES="10" must be at least 1024.*PLEXUS_LIMITS_CODE_SLOTS="0" must be positive/,
    );
  });

  it('reads the login limits per user and address, per address and per user, and the old name of the first', () => {
    expect(loadConfig({}).iam.login).toEqual({ maxPerUserAddress: 5, maxPerAddress: 20, maxPerUser: 100, windowMs: 15 * 60_000 });
    expect(loadConfig({ PLEXUS_LOGIN_MAX_ATTEMPTS: '3' }).iam.login.maxPerUserAddress).toBe(3);
    expect(loadConfig({ PLEXUS_LOGIN_MAX_ATTEMPTS: '3', PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER_ADDRESS: '7' }).iam.login.maxPerUserAddress).toBe(7);
    expect(() => loadConfig({ PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER: '0' })).toThrow(/PLEXUS_LOGIN_MAX_ATTEMPTS_PER_USER="0" must be positive/);
  });

  it('reads the Director settings: the query cache in MB, 0 turning it off', () => {
    expect(loadConfig({}).director).toEqual({ specValidation: 'lenient', webhookFirstRetryMs: 10_000, webhookRetryWindowMs: 86_400_000, queryCacheBytes: 32 * 1024 * 1024 });
    expect(loadConfig({ PLEXUS_DIRECTOR_QUERY_CACHE_MB: '0' }).director.queryCacheBytes).toBe(0);
    expect(() => loadConfig({ PLEXUS_DIRECTOR_QUERY_CACHE_MB: '-1' })).toThrow(/PLEXUS_DIRECTOR_QUERY_CACHE_MB="-1" must be 0 or more/);
  });

  it('requires a secret key in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/PLEXUS_SECRET_KEY is required when NODE_ENV=production/);
  });
});
