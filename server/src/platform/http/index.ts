export { createHttpServer, registerModuleRoutes, sendError, toHttpError, type HttpApp, type HttpServerOptions, type DeniedAccess } from './server.js';
export { registerHealthRoutes, type ReadinessCheck } from './health.routes.js';
export { EventStreams, type SseMessage } from './sse.js';
export { registerCockpitRoutes, NON_COCKPIT_PREFIXES, type CockpitFiles } from './cockpit.routes.js';
export { createMetrics, addCollectedGauge, type Metrics } from './metrics.js';
export { hasPermission, isPlatformAdmin, isRestrictedPermission, type Authenticator, type Principal, type RoutePermission } from './auth.js';
