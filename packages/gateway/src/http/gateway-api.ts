import type { Logger } from '@portcullis/core';
import type { GatewayConfig } from '../config/load-config.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import { identityRoutes } from '../identity/identity-routes.js';
import { operationalRoutes, type OperationalState } from './api-routes.js';
import { startHttpServer, type HttpServer } from './http-server.js';

/**
 * Starts the gateway's HTTP API when the configuration asks for it (`listeners.http`): the
 * operational endpoints, and the identity endpoints when identity is configured here.
 */
export async function startGatewayApi(
  config: GatewayConfig,
  logger: Logger,
  state: OperationalState,
  identity: GatewayIdentity | null,
): Promise<HttpServer | null> {
  if (config.http === null) return null;
  const resourceNames = (): string[] => Object.keys(config.resources);
  return startHttpServer({
    host: config.http.host,
    port: config.http.port,
    maxBodyBytes: config.http.maxBodyBytes,
    routes: [
      ...operationalRoutes(state),
      ...(identity === null ? [] : identityRoutes(identity, resourceNames)),
    ],
    logger,
  });
}
