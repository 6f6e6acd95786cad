import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@portcullis/core';
import type { GatewayConfig } from './config/load-config.js';
import { AggregatorRegistry } from 'prom-client';
import {
  ClusterSinkClient,
  ClusterSinkHost,
  type DeliverEventsMessage,
  type EventsDeliveredMessage,
} from './events/cluster-event-sinks.js';
import { createLocalSinks } from './events/event-pipeline.js';
import { startGateway, type Gateway } from './gateway.js';
import { startGatewayApi } from './http/gateway-api.js';
import type { HttpServer } from './http/http-server.js';
import { GatewayIdentity } from './identity/gateway-identity.js';
import { ApprovalBroker } from './approvals/approval-broker.js';
import { createApprovalNotifier } from './approvals/approval-notifier.js';
import { AccessService } from './access/access-service.js';
import { LazyStateDb } from './state/open-state-db.js';

/** Messages between the primary and gateway worker processes. */
export type ClusterMessage =
  | { readonly type: 'portcullis:hello' }
  | { readonly type: 'portcullis:start'; readonly config: GatewayConfig; readonly slot: number }
  | { readonly type: 'portcullis:listening'; readonly slot: number; readonly port: number }
  | { readonly type: 'portcullis:failed'; readonly slot: number; readonly message: string }
  | { readonly type: 'portcullis:cancel'; readonly processId: number; readonly secretKey: number }
  | DeliverEventsMessage
  | EventsDeliveredMessage;

/** A running gateway: one process, or a primary with workers. */
export interface RunningGateway {
  readonly host: string;
  readonly port: number;
  readonly processes: number;
  /** The HTTP API's address; null when it is off. */
  readonly http: { readonly host: string; readonly port: number } | null;
  close(): Promise<void>;
}

/** How long a crashed worker waits before it is started again. */
const RESTART_DELAY_MS = 1_000;

/**
 * Runs the gateway with `config.processes` processes. With one, it runs here. With more, this
 * process becomes a node:cluster primary that only supervises: workers share the listening
 * port, each writes its own sessions' events (so a session's events stay in order), crashed
 * workers are restarted, and a CancelRequest that lands on the wrong worker is routed through
 * the primary to the worker that owns the key.
 *
 * Events: each worker spools its own events (`<dataDir>/spool/<slot>`, so they are durable in
 * the process that recorded them) and hands batches to the primary, which runs the sinks: the
 * embedded store (chDB allows one process per data directory) and the JSONL file (one writer,
 * so it can rotate). A worker acknowledges a batch in its spool only once the primary stored
 * it; whatever a crash cut short is delivered again.
 */
export async function runGateway(config: GatewayConfig, logger: Logger): Promise<RunningGateway> {
  if (config.processes <= 1) {
    const gateway = await startGateway(config, { logger });
    let http: HttpServer | null = null;
    try {
      http = await startGatewayApi(
        config,
        logger,
        { ready: () => gateway.accepting, metrics: () => gateway.metrics.text() },
        gateway.identity,
        gateway.approvals,
        gateway.access,
        gateway.events?.store ?? null,
        gateway.notifier,
      );
    } catch (err) {
      await gateway.close();
      throw err;
    }
    return {
      host: gateway.postgres.host,
      port: gateway.postgres.port,
      processes: 1,
      http: http === null ? null : { host: http.host, port: http.port },
      async close() {
        http?.close();
        await gateway.close();
      },
    };
  }
  return runPrimary(config, logger);
}

async function runPrimary(config: GatewayConfig, logger: Logger): Promise<RunningGateway> {
  // The primary signs credentials and keeps delegations; it opens the key ring before any
  // worker does, so the first signing key exists when they start to verify.
  const identity =
    config.identity === null
      ? null
      : await GatewayIdentity.open(config.identity, {
          issuer: config.identity.issuer,
          dataDir: config.dataDir,
          logger,
          role: 'issuer',
        });
  const events = new ClusterSinkHost(await createLocalSinks(config.events, logger), logger);
  const stateDb = LazyStateDb.forConfig(config, logger);
  // The primary serves the access-request endpoints on the shared state database.
  const access =
    stateDb === null ? null : AccessService.forConfig(config, () => stateDb.get(), logger);
  // Decisions made through its API, and access requests, reach the approvers' webhooks from here
  // (its delivery metrics stay in this process: the primary's /metrics sums its workers').
  const notifier = stateDb === null ? null : await createApprovalNotifier(config, { logger });
  // Its API decides statements that workers hold, through the shared state database.
  const approvals =
    stateDb !== null && Object.values(config.resources).some((r) => r.approvals.size > 0)
      ? ApprovalBroker.forConfig(config, () => stateDb.get(), notifier, logger)
      : null;
  const here = fileURLToPath(import.meta.url);
  cluster.setupPrimary({
    exec: here.replace(/run-gateway\.(ts|js)$/, 'cluster-worker.$1'),
    serialization: 'advanced',
  });
  const workers = new Map<number, Worker>();
  let stopping = false;
  let port = config.postgres.port;

  const fork = (slot: number): Promise<void> =>
    new Promise((resolveStarted, reject) => {
      let listening = false;
      const worker = cluster.fork({ PORTCULLIS_WORKER_SLOT: String(slot) });
      workers.set(slot, worker);
      worker.on('message', (message: ClusterMessage) => {
        if (message.type === 'portcullis:hello') {
          // The worker listens for messages only once its modules have loaded.
          const start: ClusterMessage = { type: 'portcullis:start', config, slot };
          worker.send(start);
        } else if (message.type === 'portcullis:listening') {
          port = message.port;
          listening = true;
          resolveStarted();
        } else if (message.type === 'portcullis:failed') {
          reject(new Error(message.message));
        } else if (message.type === 'portcullis:cancel') {
          const owner = workers.get(message.processId >>> 24);
          owner?.send(message);
        } else if (message.type === 'portcullis:events') {
          void events.handle(message, (answer) => {
            if (worker.isConnected()) worker.send(answer);
          });
        }
      });
      worker.once('exit', (code, signal) => {
        if (workers.get(slot) === worker) workers.delete(slot);
        if (stopping) return;
        if (!listening) {
          reject(new Error(`gateway worker ${slot} exited during start (code ${code})`));
          return;
        }
        logger.error({ slot, code, signal }, 'gateway worker exited; restarting it');
        setTimeout(() => {
          if (!stopping)
            fork(slot).catch((err: unknown) =>
              logger.error({ err, slot }, 'worker restart failed'),
            );
        }, RESTART_DELAY_MS).unref();
      });
    });

  // Every worker asks for the configured port (even 0): the primary binds it once and shares it.
  let http: HttpServer | null = null;
  try {
    await Promise.all(Array.from({ length: config.processes }, (_, slot) => fork(slot)));
    // The primary serves the HTTP API; metrics are the sum of its workers' registries.
    const aggregator = new AggregatorRegistry();
    http = await startGatewayApi(
      config,
      logger,
      {
        ready: () => !stopping && workers.size === config.processes,
        metrics: async () => (await aggregator.clusterMetrics()) as string,
      },
      identity,
      approvals,
      access,
      // The sinks run here, so the store is read here.
      events.store,
      notifier,
    );
  } catch (err) {
    stopping = true;
    for (const worker of workers.values()) worker.kill('SIGTERM');
    await approvals?.close('the gateway did not start');
    await notifier?.close();
    await access?.close();
    await stateDb?.close();
    await events.close();
    throw err;
  }
  return {
    host: config.postgres.host,
    port,
    processes: config.processes,
    http: http === null ? null : { host: http.host, port: http.port },
    async close() {
      stopping = true;
      http?.close();
      await Promise.all(
        [...workers.values()].map(
          (worker) =>
            new Promise<void>((resolveExit) => {
              worker.once('exit', () => resolveExit());
              worker.kill('SIGTERM');
            }),
        ),
      );
      // Workers drained their spools into the sinks while stopping.
      await events.close();
      await approvals?.close('the gateway is shutting down');
      await notifier?.close();
      await access?.close();
      await stateDb?.close();
    },
  };
}

/** Body of a gateway worker process (see cluster-worker.ts). */
export function runWorker(makeLogger: (config: GatewayConfig) => Logger): void {
  let gateway: Gateway | null = null;
  const events = new ClusterSinkClient((message) => {
    // send() returning false only means a backlog: the message is still queued.
    if (!process.connected || process.send === undefined) return false;
    process.send(message);
    return true;
  });
  process.on('disconnect', () => events.failAll('the gateway primary is gone'));
  process.on('message', (message: ClusterMessage) => {
    if (message.type === 'portcullis:events-done') {
      events.settle(message);
    } else if (message.type === 'portcullis:start') {
      const logger = makeLogger(message.config);
      startGateway(message.config, {
        logger,
        slot: message.slot,
        eventDelivery: events,
        identityRole: 'verifier',
        routeCancel: (processId, secretKey) => {
          const route: ClusterMessage = { type: 'portcullis:cancel', processId, secretKey };
          process.send?.(route);
        },
      }).then(
        (started) => {
          gateway = started;
          // The primary's /metrics collects this registry over the cluster channel (constructing
          // an AggregatorRegistry is what makes a worker answer the primary's requests).
          new AggregatorRegistry();
          AggregatorRegistry.setRegistries([started.metrics.registry]);
          const ready: ClusterMessage = {
            type: 'portcullis:listening',
            slot: message.slot,
            port: started.postgres.port,
          };
          process.send?.(ready);
        },
        (err: unknown) => {
          const failed: ClusterMessage = {
            type: 'portcullis:failed',
            slot: message.slot,
            message: (err as Error).message,
          };
          process.send?.(failed, () => process.exit(1));
        },
      );
    } else if (message.type === 'portcullis:cancel') {
      gateway?.cancel(message.processId, message.secretKey);
    }
  });
  const hello: ClusterMessage = { type: 'portcullis:hello' };
  process.send?.(hello);
  const stop = (): void => {
    const closing = gateway?.close() ?? Promise.resolve();
    closing.finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  // The primary handles Ctrl-C for the whole gateway.
  process.on('SIGINT', () => {});
}
