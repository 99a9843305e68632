/** Connector: one-time tokens, client certificates and the mTLS listener (see README.md). */
import type { AddressInfo } from 'node:net';
import { createAuditPublisher } from '../../platform/audit.js';
import type { Bus, Consumer } from '../../platform/bus/index.js';
import type { Config } from '../../platform/config.js';
import type { Db } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import type { PlexusModule } from '../../platform/module.js';
import type { DirectorModule } from '../director/index.js';
import { loadKeyring } from '../secrets/index.js';
import { loadCertificateAuthority } from './connector.ca.js';
import { createMtlsServer, type MtlsApp, type MtlsDeps } from './connector.mtls.js';
import { eventRoutes } from './connector.events.js';
import { startEventTriggers } from './connector.triggers.js';
import { connectorRoutes } from './connector.routes.js';
import { ConnectorService, REVOKED_EVENT, type ConnectorUrls } from './connector.service.js';

export { ConnectorService, REVOKED_EVENT } from './connector.service.js';
export { ApiTokenCache, type OAuthClient } from './connector.apitokens.js';
export type { CertificateIdentity } from './connector.service.js';
export type { MtlsApp } from './connector.mtls.js';
export { eventTopic, APP_EVENT_PREFIX, type ApplicationEvent } from './connector.events.js';

const PURGE_INTERVAL_MS = 60 * 60_000;

export interface ConnectorModule extends PlexusModule {
  service: ConnectorService;
  /** Binds PLEXUS_MTLS_PORT; resolves to its base URL. */
  listenMtls(): Promise<string>;
}

function hostForUrl(host: string): string {
  const h = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return h.includes(':') ? `[${h}]` : h;
}

/**
 * The service alone (tokens, CA, certificates): created before the Director, which holds it as
 * its Pairing port.
 */
export async function createConnectorService(deps: { config: Config; db: Db; bus: Bus; logger: Logger }): Promise<{ service: ConnectorService; urls: ConnectorUrls }> {
  const keyring = loadKeyring({
    key: deps.config.secrets.key,
    previousKeys: deps.config.secrets.previousKeys,
    dataDir: deps.config.dataDir,
    isProduction: deps.config.isProduction,
    // The secrets module already warns about a generated key on a shared database.
    sharedDatabase: false,
    logger: deps.logger,
  });
  const ca = await loadCertificateAuthority({ db: deps.db, keyring, logger: deps.logger, certFile: deps.config.connector.caCertFile, keyFile: deps.config.connector.caKeyFile });
  const host = hostForUrl(deps.config.http.host);
  // Until the ports are bound (port 0 in tests) the configured ones stand in.
  const urls: ConnectorUrls = {
    publicUrl: deps.config.connector.publicUrl ?? `http://${host}:${deps.config.http.port}`,
    mtlsUrl: deps.config.connector.mtlsPublicUrl ?? `https://${host}:${deps.config.http.mtlsPort}`,
  };
  const service = new ConnectorService({
    db: deps.db,
    bus: deps.bus,
    audit: createAuditPublisher(deps.bus, 'connector', deps.logger),
    logger: deps.logger,
    ca,
    config: deps.config.connector,
    urls: () => urls,
  });
  return { service, urls };
}

export interface ConnectorModuleDeps {
  config: Config;
  db: Db;
  bus: Bus;
  logger: Logger;
  service: ConnectorService;
  urls: ConnectorUrls;
  director: DirectorModule;
  /** Further routes on the mTLS listener. */
  extraMtlsRoutes?: MtlsDeps['extraRoutes'];
}

export function createConnectorModule(deps: ConnectorModuleDeps): ConnectorModule {
  const { service, config } = deps;
  service.bindDirector((tenant, systemAuthId, ip, certId) => deps.director.service.certificateCaller(tenant, systemAuthId, ip, certId));
  let mtls: MtlsApp | undefined;
  let unlisten: (() => Promise<void>) | undefined;
  let purgeTimer: NodeJS.Timeout | undefined;
  let triggers: Consumer[] = [];
  return {
    name: 'connector',
    role: 'connector',
    service,
    routes: connectorRoutes(service, deps.logger),
    async start() {
      // Revocations on any process reach this one at once.
      unlisten = await deps.bus.live.subscribe(REVOKED_EVENT, () => service.onRevoked());
      triggers = await startEventTriggers({ db: deps.db, bus: deps.bus, logger: deps.logger, director: deps.director.service });
      purgeTimer = setInterval(() => void service.purge().catch((err: unknown) => deps.logger.warn({ err }, 'could not purge one-time tokens and event ids')), PURGE_INTERVAL_MS);
      purgeTimer.unref();
    },
    async listenMtls() {
      const hosts = [config.http.host, 'localhost', '127.0.0.1', '::1'];
      if (config.connector.mtlsPublicUrl) hosts.unshift(new URL(config.connector.mtlsPublicUrl).hostname.replace(/^\[|\]$/g, ''));
      const tls = await service.serverCertificate(hosts);
      mtls = await createMtlsServer({
        service,
        logger: deps.logger,
        tls,
        directorRoutes: deps.director.routesWith,
        extraRoutes: [eventRoutes({ db: deps.db, bus: deps.bus, director: deps.director.service, logger: deps.logger, maxBytes: config.webhooks.maxBytes }), ...(deps.extraMtlsRoutes ?? [])],
      });
      await mtls.listen({ host: config.http.host, port: config.http.mtlsPort });
      const port = (mtls.server.address() as AddressInfo).port;
      if (!config.connector.mtlsPublicUrl) deps.urls.mtlsUrl = `https://${hostForUrl(config.http.host)}:${port}`;
      return deps.urls.mtlsUrl;
    },
    async stop() {
      clearInterval(purgeTimer);
      await unlisten?.();
      for (const c of triggers) await c.stop();
      await mtls?.close();
      await service.close();
    },
  };
}
