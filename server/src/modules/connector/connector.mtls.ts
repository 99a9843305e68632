/**
 * The mTLS listener (PLEXUS_MTLS_PORT): a second Fastify server over HTTPS that asks every client
 * for a certificate and completes the handshake only with one signed by the hub's CA (another
 * CA's or a self-signed certificate fails in the handshake). Each request then maps the
 * certificate to its identity (connector.service.ts `identityOf`): a revoked certificate, or one
 * whose system auth is gone, gets 401 on its first request — also on a connection opened before
 * the revocation. The tenant and the caller come from the certificate alone (the gateway's
 * tenant extraction); identity headers a client sends are never read.
 */
import { randomUUID } from 'node:crypto';
import type https from 'node:https';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { AppError } from '../../platform/errors.js';
import type { HttpApp } from '../../platform/http/index.js';
import type { Logger } from '../../platform/logger.js';
import type { Caller } from '../director/index.js';
import { connectorGraphqlHandler, installErrorHandler, MAX_BODY_BYTES } from './connector.routes.js';
import type { CertificateIdentity, ConnectorService } from './connector.service.js';

export type MtlsApp = FastifyInstance<https.Server>;

/**
 * The fingerprint of each connection's verified client certificate, read once per connection:
 * `getPeerCertificate()` builds a whole object from the X.509 on each call, ~9 % of the hub's CPU
 * per event on keep-alive connections. Renegotiation (TLS 1.2), which could change the peer's
 * certificate, is disabled from that first read on.
 */
const fingerprints = new WeakMap<TLSSocket, string>();

/** The fingerprint of the verified client certificate of a request's connection. */
function peerFingerprint(req: FastifyRequest): string {
  const socket = req.raw.socket as TLSSocket;
  if (!socket.authorized) throw new AppError('UNAUTHENTICATED', `the client certificate is not accepted: ${String(socket.authorizationError ?? 'none was sent')}`);
  let fingerprint = fingerprints.get(socket);
  if (fingerprint === undefined) {
    fingerprint = socket.getPeerCertificate().fingerprint256;
    if (!fingerprint) throw new AppError('UNAUTHENTICATED', 'no client certificate was sent');
    socket.disableRenegotiation();
    fingerprints.set(socket, fingerprint);
  }
  return fingerprint;
}

export interface MtlsDeps {
  service: ConnectorService;
  logger: Logger;
  tls: { certPem: string; keyPem: string; caPem: string };
  /** `POST /director/graphql` with the certificate's caller (the Director module's routesWith). */
  directorRoutes: (resolveCaller: (req: FastifyRequest) => Promise<Caller>) => (app: HttpApp) => Promise<void>;
  /** Further routes on this listener (application events), given the identity of a request. */
  extraRoutes?: Array<(app: MtlsApp, identityOf: (req: FastifyRequest) => Promise<CertificateIdentity>) => Promise<void>>;
}

export async function createMtlsServer(deps: MtlsDeps): Promise<MtlsApp> {
  const app = Fastify({
    loggerInstance: deps.logger.child({ part: 'mtls' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: () => randomUUID(),
    bodyLimit: 1024 * 1024,
    forceCloseConnections: 'idle',
    https: {
      key: deps.tls.keyPem,
      cert: deps.tls.certPem,
      ca: [deps.tls.caPem],
      requestCert: true,
      // The handshake itself refuses certificates the hub's CA did not sign.
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
  }) as unknown as MtlsApp;

  const identityOf = (req: FastifyRequest): Promise<CertificateIdentity> => deps.service.identityOf(peerFingerprint(req), req.ip);

  await app.register(async (scope) => {
    installErrorHandler(scope as unknown as HttpApp, deps.logger);
    scope.post('/connector/graphql', { bodyLimit: MAX_BODY_BYTES }, connectorGraphqlHandler(deps.service, deps.logger, identityOf));
  });
  await app.register(async (scope) => {
    await deps.directorRoutes(async (req) => (await identityOf(req)).caller)(scope as unknown as HttpApp);
  });
  for (const add of deps.extraRoutes ?? []) {
    await app.register(async (scope) => add(scope as MtlsApp, identityOf));
  }
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send({ errors: [{ code: 'ROUTE_NOT_FOUND', message: `${req.method} ${req.url.split('?')[0]} is not served on the mTLS port (connector, director, events)` }] }),
  );
  await app.ready();
  return app;
}
