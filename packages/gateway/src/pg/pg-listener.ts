import { createServer, type Server, type Socket } from 'node:net';
import { createSecureContext } from 'node:tls';
import type { EventSink, Logger } from '@portcullis/core';
import type { ApprovalBroker } from '../approvals/approval-broker.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import type { EphemeralRoleProvisioner } from './ephemeral-roles.js';
import type { MaskingWorkers, ResourceMaskingRuntime } from '../masking/resource-masking.js';
import type { StatementAnalyzer } from '@portcullis/sql';
import type { GatewayConfig } from '../config/load-config.js';
import type { AccessService } from '../access/access-service.js';
import { acceptClient, type AcceptContext } from './accept-client.js';
import type { CancelRegistry } from './cancel-registry.js';
import { fatal, SqlState } from './pg-errors.js';
import type { PgRelay } from './pg-relay.js';

const SHUTDOWN_GRACE_MS = 2_000;

/** A running PostgreSQL listener. */
export interface PgListener {
  readonly host: string;
  readonly port: number;
  /** Live relayed sessions. */
  readonly sessionCount: number;
  /** Stops accepting, ends every session with 57P01 and waits for them to close. */
  close(): Promise<void>;
}

/** What a listener needs besides the configuration. */
export interface PgListenerDeps {
  readonly sink: EventSink;
  readonly logger: Logger;
  readonly cancels: CancelRegistry;
  readonly routeCancel: (processId: number, secretKey: number) => void;
  /** The process's statement analyzer (its parser already loaded). */
  readonly analyzer: StatementAnalyzer;
  /** Masking state of each resource that masks (by resource name). */
  readonly masking: ReadonlyMap<string, ResourceMaskingRuntime>;
  /** The process's masking workers; null when masking runs inline only. */
  readonly maskingWorkers: MaskingWorkers | null;
  /** Checks gateway credentials; null when identity is not configured. */
  readonly identity: GatewayIdentity | null;
  /** Session-role provisioners of the resources in ephemeral mode (by resource name). */
  readonly ephemeralRoles: ReadonlyMap<string, EphemeralRoleProvisioner>;
  /** Holds `review` statements for approval; absent: they are refused at once. */
  readonly approvals?: ApprovalBroker;
  /** Time-boxed access grants; absent when no resource takes access requests. */
  readonly access?: AccessService;
  /** Listen on an already-bound server (cluster workers share the primary's); default: own. */
  readonly exclusive?: boolean;
}

/** Starts the PostgreSQL listener of a gateway process. */
export async function startPgListener(
  config: GatewayConfig,
  deps: PgListenerDeps,
): Promise<PgListener> {
  const sessions = new Set<PgRelay>();
  const ctx: AcceptContext = {
    config,
    tls:
      config.postgres.tls === null
        ? null
        : createSecureContext({ cert: config.postgres.tls.cert, key: config.postgres.tls.key }),
    sink: deps.sink,
    logger: deps.logger,
    cancels: deps.cancels,
    routeCancel: deps.routeCancel,
    sessions,
    analyzer: deps.analyzer,
    masking: deps.masking,
    maskingWorkers: deps.maskingWorkers,
    identity: deps.identity,
    ephemeralRoles: deps.ephemeralRoles,
    ...(deps.approvals === undefined ? {} : { approvals: deps.approvals }),
    ...(deps.access === undefined ? {} : { access: deps.access }),
  };
  const sockets = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (socket) => {
    if (sockets.size >= config.limits.maxConnections) {
      // A refused client may reset the connection while the refusal is written: without a
      // listener that 'error' would be an uncaught exception. Reading (and dropping) its input
      // lets the socket see the client's FIN and close at once instead of at the timeout.
      socket.on('error', (err) => deps.logger.debug({ err }, 'refused client socket error'));
      socket.resume();
      socket.end(fatal(SqlState.TooManyConnections, 'sorry, too many clients already'));
      socket.setTimeout(5_000, () => socket.destroy());
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', (err) => deps.logger.debug({ err }, 'client socket error'));
    acceptClient(socket, ctx).catch((err: unknown) => {
      deps.logger.error({ err }, 'unexpected error while accepting a client');
      socket.destroy();
    });
  });
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(
      {
        host: config.postgres.host,
        port: config.postgres.port,
        exclusive: deps.exclusive ?? false,
      },
      () => {
        server.off('error', reject);
        resolveListen();
      },
    );
  });
  server.on('error', (err) => deps.logger.error({ err }, 'listener error'));
  const address = server.address();
  const port =
    typeof address === 'object' && address !== null ? address.port : config.postgres.port;
  return {
    host: config.postgres.host,
    port,
    get sessionCount() {
      return sessions.size;
    },
    async close() {
      const closed = new Promise<void>((resolveClose) => server.close(() => resolveClose()));
      for (const relay of sessions)
        relay.terminate(
          SqlState.AdminShutdown,
          'terminating connection because the gateway is shutting down',
          'shutdown',
        );
      // Sessions end at their next frame boundary; anything still open after the grace
      // period (clients in startup, clients that stopped reading) is cut.
      const deadline = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, SHUTDOWN_GRACE_MS);
      await closed;
      clearTimeout(deadline);
      // The server is closed once every client socket is; a session still records its end when
      // its upstream socket closes too, which can come later. Wait for that (bounded), so the
      // caller does not close the event sink under it.
      const settleBy = Date.now() + SHUTDOWN_GRACE_MS;
      while (sessions.size > 0 && Date.now() < settleBy) {
        await new Promise((resolveTick) => setTimeout(resolveTick, 10));
      }
    },
  };
}
