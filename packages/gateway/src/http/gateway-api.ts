import type { Logger } from '@portcullis/core';
import { accessRoutes } from '../access/access-routes.js';
import type { AccessService } from '../access/access-service.js';
import type { ApprovalBroker } from '../approvals/approval-broker.js';
import type { ApprovalNotifier } from '../approvals/approval-notifier.js';
import { openApprovalPages } from '../approvals/approval-page-routes.js';
import { approvalRoutes } from '../approvals/approval-routes.js';
import type { GatewayConfig } from '../config/load-config.js';
import { eventRoutes } from '../events/event-routes.js';
import type { EventStoreReader } from '../events/event-store-access.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import { identityRoutes } from '../identity/identity-routes.js';
import { operationalRoutes, type OperationalState } from './api-routes.js';
import { startHttpServer, type HttpServer } from './http-server.js';

/**
 * Starts the gateway's HTTP API when the configuration asks for it (`listeners.http`): the
 * operational endpoints, and the identity endpoints when identity is configured here, with the
 * approval endpoints when this process also holds statements (`approvals`).
 */
export async function startGatewayApi(
  config: GatewayConfig,
  logger: Logger,
  state: OperationalState,
  identity: GatewayIdentity | null,
  approvals: ApprovalBroker | null = null,
  access: AccessService | null = null,
  eventStore: EventStoreReader | null = null,
  notifier: ApprovalNotifier | null = null,
): Promise<HttpServer | null> {
  if (config.http === null) return null;
  const resourceNames = (): string[] => Object.keys(config.resources);
  return startHttpServer({
    host: config.http.host,
    port: config.http.port,
    maxBodyBytes: config.http.maxBodyBytes,
    routes: [
      ...operationalRoutes(state),
      ...(identity === null
        ? []
        : identityRoutes(
            identity,
            resourceNames,
            access === null
              ? undefined
              : async (person, resource) =>
                  (await access.activeGrant(person.subject, resource).catch(() => null)) !== null,
          )),
      ...(identity === null || approvals === null ? [] : approvalRoutes(approvals, identity)),
      ...(identity === null || access === null
        ? []
        : accessRoutes({
            store: () => access.store(),
            identity,
            config,
            ...(notifier === null ? {} : { notify: (notice) => notifier.notify(notice) }),
          })),
      // Reviews, events and chain checks, where this process holds the store.
      ...(identity === null || eventStore === null
        ? []
        : eventRoutes({ store: eventStore, identity, config, logger })),
      // The review pages behind the links in approval notifications.
      ...(identity === null || approvals === null
        ? []
        : await openApprovalPages(config, approvals, identity, logger)),
    ],
    logger,
  });
}
