import type { EventSink, Logger } from '@portcullis/core';
import { StatementAnalyzer, loadSqlParser } from '@portcullis/sql';
import { ApprovalBroker } from './approvals/approval-broker.js';
import { createApprovalNotifier, type ApprovalNotifier } from './approvals/approval-notifier.js';
import type { GatewayConfig } from './config/load-config.js';
import type { ClusterSinkClient } from './events/cluster-event-sinks.js';
import { EventPipeline } from './events/event-pipeline.js';
import { GatewayMetrics, meteredSink } from './http/gateway-metrics.js';
import { GatewayIdentity } from './identity/gateway-identity.js';
import { EphemeralRoleProvisioner } from './pg/ephemeral-roles.js';
import {
  DEFAULT_WORKER_THRESHOLD_BYTES,
  MaskingPool,
  type MaskTestHook,
} from './masking/masking-pool.js';
import { ResourceMaskingRuntime } from './masking/resource-masking.js';
import { CancelRegistry } from './pg/cancel-registry.js';
import { AccessService } from './access/access-service.js';
import { startPgListener, type PgListener } from './pg/pg-listener.js';
import { LazyStateDb } from './state/open-state-db.js';

/** A running gateway process (one of several in multi-process mode). */
export interface Gateway {
  readonly postgres: PgListener;
  /** Gateway credentials and delegations; null when identity is not configured. */
  readonly identity: GatewayIdentity | null;
  /**
   * Statements held for approval, kept in the state database; null when no resource has a
   * `review` rule with approvers (there `review` statements are refused at once).
   */
  readonly approvals: ApprovalBroker | null;
  /** The state database (opened on first use); null when no resource keeps state. */
  readonly state: LazyStateDb | null;
  /** Time-boxed access requests and grants; null when no resource takes requests. */
  readonly access: AccessService | null;
  /** Approvers' webhooks; null when none are configured or nothing here needs them. */
  readonly notifier: ApprovalNotifier | null;
  /** This process's metrics (counted from the events it records). */
  readonly metrics: GatewayMetrics;
  /** The spool and its sinks; null when an event sink was injected. */
  readonly events: EventPipeline | null;
  /** False once closing has begun. */
  readonly accepting: boolean;
  /** Routes a cancel key owned by this process (cluster plumbing). */
  cancel(processId: number, secretKey: number): void;
  /** Ends sessions, stops listening and flushes events. */
  close(): Promise<void>;
}

/** Options of {@link startGateway}. */
export interface StartGatewayOptions {
  readonly logger: Logger;
  /** This process's slot among the gateway's processes (0 when alone). */
  readonly slot?: number;
  /** Where cancel keys of other processes go; default: ignored (single process). */
  readonly routeCancel?: (processId: number, secretKey: number) => void;
  /** Event sink replacing the spool and its sinks (tests); default: the configured pipeline. */
  readonly sink?: EventSink;
  /** A cluster worker hands its spooled events to the primary's sinks through this. */
  readonly eventDelivery?: ClusterSinkClient;
  /**
   * `issuer` (default): this process signs gateway credentials and writes delegations;
   * `verifier`: it only checks them (cluster workers; the primary issues).
   */
  readonly identityRole?: 'issuer' | 'verifier';
  /** Test-only: a fault for masking workers to raise (needs PORTCULLIS_TEST_HOOKS=1). */
  readonly maskingFault?: () => MaskTestHook | undefined;
}

/** Starts one gateway process: event sink and listeners. */
export async function startGateway(
  config: GatewayConfig,
  options: StartGatewayOptions,
): Promise<Gateway> {
  const { logger } = options;
  const metrics = new GatewayMetrics();
  const pipeline =
    options.sink === undefined
      ? await EventPipeline.open(config.events, {
          slot: options.slot ?? 0,
          logger,
          ...(options.eventDelivery === undefined ? {} : { remote: options.eventDelivery }),
        })
      : null;
  if (pipeline !== null) metrics.watchEvents(() => pipeline.snapshot());
  const sink = meteredSink(pipeline?.sink ?? options.sink!, metrics);
  const cancels = new CancelRegistry(options.slot ?? 0, logger);
  const state = LazyStateDb.forConfig(config, logger);
  // Several processes share holds only through a shared state database (load-config insists).
  const holdsHere =
    state !== null &&
    Object.values(config.resources).some((r) => r.approvals.size > 0) &&
    (options.slot === undefined || config.state.url !== null);
  // Webhooks hear of holds raised here, and of access requests where this process serves the API.
  const notifier =
    holdsHere || (state !== null && options.slot === undefined)
      ? await createApprovalNotifier(config, { logger, registry: metrics.registry })
      : null;
  const approvals = holdsHere
    ? ApprovalBroker.forConfig(config, () => state.get(), notifier, logger)
    : null;
  // Access requests and grants live in the state database too.
  const access = state === null ? null : AccessService.forConfig(config, () => state.get(), logger);
  // Tables and the decision subscription are ready before the first hold; if the state
  // database is away now, holds fail closed until it is back.
  await approvals?.start().catch((err: unknown) => {
    logger.warn({ err }, 'the approval state database is not reachable yet');
  });
  // The parser (WASM) loads once per process; analyses are cached across its sessions.
  await loadSqlParser();
  const analyzer = new StatementAnalyzer();
  const masking = new Map<string, ResourceMaskingRuntime>();
  for (const resource of Object.values(config.resources)) {
    if (resource.masking === null) continue;
    masking.set(
      resource.name,
      new ResourceMaskingRuntime(
        { ...resource, masking: resource.masking },
        { logger, maxFrameBytes: config.limits.maxFrameBytes },
      ),
    );
  }
  const pool =
    masking.size > 0 && config.masking.threads > 0
      ? new MaskingPool({
          threads: config.masking.threads,
          taskTimeoutMs: config.masking.taskTimeoutMs,
          logger,
        })
      : null;
  // Resources in ephemeral mode: one provisioner each (its own admin connection), swept at start.
  const ephemeralRoles = new Map<string, EphemeralRoleProvisioner>();
  for (const resource of Object.values(config.resources)) {
    if (resource.ephemeralRoles === null) continue;
    const { templateRole, admin, ttlMs, prefix } = resource.ephemeralRoles;
    const provisioner = new EphemeralRoleProvisioner({
      resource,
      admin,
      templateRole,
      ttlMs,
      prefix,
      logger,
    });
    ephemeralRoles.set(resource.name, provisioner);
    provisioner.start().catch((err: unknown) => {
      logger.warn({ err, resource: resource.name }, 'sweeping leftover session roles failed');
    });
  }
  const closeMasking = async (): Promise<void> => {
    for (const runtime of masking.values()) runtime.close();
    await pool?.close();
    await Promise.all([...ephemeralRoles.values()].map((p) => p.close()));
  };
  let postgres: PgListener;
  let identity: GatewayIdentity | null;
  try {
    identity =
      config.identity === null
        ? null
        : await GatewayIdentity.open(config.identity, {
            issuer: config.identity.issuer,
            dataDir: config.dataDir,
            logger,
            role: options.identityRole ?? 'issuer',
          });
    postgres = await startPgListener(config, {
      identity,
      ephemeralRoles,
      sink,
      logger,
      cancels,
      analyzer,
      masking,
      maskingWorkers:
        pool === null
          ? null
          : {
              pool,
              thresholdBytes: config.masking.thresholdBytes ?? DEFAULT_WORKER_THRESHOLD_BYTES,
              ...(options.maskingFault === undefined ? {} : { fault: options.maskingFault }),
            },
      routeCancel: options.routeCancel ?? (() => {}),
      ...(approvals === null ? {} : { approvals }),
      ...(access === null ? {} : { access }),
    });
  } catch (err) {
    await closeMasking();
    await approvals?.close('the gateway did not start');
    await notifier?.close();
    await access?.close();
    await state?.close();
    await sink.close();
    await pipeline?.close();
    throw err;
  }
  let accepting = true;
  return {
    postgres,
    identity,
    approvals,
    state,
    access,
    notifier,
    metrics,
    events: pipeline,
    get accepting() {
      return accepting;
    },
    cancel: (processId, secretKey) => void cancels.cancel(processId, secretKey),
    async close() {
      accepting = false;
      await postgres.close();
      await approvals?.close('the gateway is shutting down');
      await notifier?.close();
      await access?.close();
      await state?.close();
      await closeMasking();
      // Sessions have ended (their last events are in): flush, let the sinks catch up, stop.
      await sink.close();
      await pipeline?.close();
    },
  };
}
