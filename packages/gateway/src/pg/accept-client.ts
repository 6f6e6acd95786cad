import { randomUUID } from 'node:crypto';
import type { Socket } from 'node:net';
import { TLSSocket, type SecureContext } from 'node:tls';
import {
  PortcullisError,
  isPortcullisError,
  type AuthMethod,
  type ClientInfo,
  type EventSink,
  type Logger,
  type Person,
  type SessionIdentity,
} from '@portcullis/core';
import {
  FrontendCode,
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  decodePassword,
  encryptionRefused,
  negotiateProtocolVersion,
  readyForQuery,
  sslAccepted,
} from '@portcullis/protocol-pg';
import type {
  MaskedSession,
  MaskingWorkers,
  ResourceMaskingRuntime,
} from '../masking/resource-masking.js';
import type { StatementAnalyzer } from '@portcullis/sql';
import { sha256Hex, type GatewayConfig } from '../config/load-config.js';
import {
  EVENTS_REFUSED_HINT,
  EVENTS_REFUSED_SQLSTATE,
  sinkAccepts,
} from '../events/event-admission.js';
import type { ApprovalBroker } from '../approvals/approval-broker.js';
import { requestHint, type AccessGrant } from '../access/access-rules.js';
import type { AccessService } from '../access/access-service.js';
import { SessionRecorder } from '../events/session-recorder.js';
import {
  AuthRefusal,
  looksLikeCredential,
  type GatewayIdentity,
} from '../identity/gateway-identity.js';
import type { CancelRegistry } from './cancel-registry.js';
import { connectUpstream, type UpstreamConnection } from './connect-upstream.js';
import { fatal, SqlState } from './pg-errors.js';
import type { EphemeralRole, EphemeralRoleProvisioner } from './ephemeral-roles.js';
import { PgRelay } from './pg-relay.js';
import { unreadableSetting } from './session-settings.js';
import { createJudge } from './statement-judge.js';
import { SocketReader } from './socket-reader.js';

/** Largest password message (the gateway token) accepted before authentication. */
const MAX_PASSWORD_FRAME = 16 * 1024;

/** Startup parameters the gateway sets itself or refuses to pass upstream. */
const RESERVED_PARAMS = new Set(['user', 'database', 'replication']);

/** What accepting a client needs from the listener. */
export interface AcceptContext {
  readonly config: GatewayConfig;
  readonly tls: SecureContext | null;
  readonly sink: EventSink;
  readonly logger: Logger;
  readonly cancels: CancelRegistry;
  /** Routes a CancelRequest whose key belongs to another gateway process. */
  readonly routeCancel: (processId: number, secretKey: number) => void;
  /** Tracks live relays for shutdown. */
  readonly sessions: Set<PgRelay>;
  /** This process's statement analyzer (parser loaded, cache shared by its sessions). */
  readonly analyzer: StatementAnalyzer;
  /** Masking state of each resource that masks (by resource name). */
  readonly masking: ReadonlyMap<string, ResourceMaskingRuntime>;
  /** Checks gateway credentials; null when identity is not configured. */
  readonly identity: GatewayIdentity | null;
  /** Session-role provisioners of the resources in ephemeral mode (by resource name). */
  readonly ephemeralRoles: ReadonlyMap<string, EphemeralRoleProvisioner>;
  /** The process's masking workers; null when masking runs inline only. */
  readonly maskingWorkers: MaskingWorkers | null;
  /** Holds `review` statements for approval; absent: they are refused at once. */
  readonly approvals?: ApprovalBroker;
  /** Time-boxed access grants; absent when no resource takes access requests. */
  readonly access?: AccessService;
}

/** The person of an `auth.failed` event when the credential named nobody. */
const UNKNOWN_PERSON: Person = Object.freeze({ subject: '', email: '', groups: [] });

/** A refusal sent to the client as a FATAL ErrorResponse before closing. */
class Refusal extends Error {
  constructor(
    readonly sqlState: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * Runs one client connection's startup: encryption negotiation, the startup message,
 * token authentication, resource authorization and the upstream login, then hands the
 * connection to a {@link PgRelay}. Every refusal reaches the client as a FATAL ErrorResponse
 * with a real SQLSTATE; internal detail goes to the log only.
 */
export async function acceptClient(raw: Socket, ctx: AcceptContext): Promise<void> {
  const { config, logger } = ctx;
  raw.setNoDelay(true);
  let socket: Socket = raw;
  const reader = new SocketReader(raw, 'client');
  const timer = setTimeout(
    () =>
      reader.fail(
        new Refusal(
          SqlState.ProtocolViolation,
          `startup did not finish within ${config.limits.authTimeoutMs} ms`,
        ),
      ),
    config.limits.authTimeoutMs,
  );
  let upstream: UpstreamConnection | null = null;
  /** The session's own upstream role (ephemeral mode), dropped when the session ends. */
  let role: EphemeralRole | null = null;
  try {
    let tlsActive = false;
    let packet = await reader.readStartupPacket();
    while (packet.kind !== 'startup') {
      if (packet.kind === 'cancel') {
        clearTimeout(timer);
        reader.detach();
        raw.destroy();
        if (ctx.cancels.owns(packet.processId))
          ctx.cancels.cancel(packet.processId, packet.secretKey);
        else ctx.routeCancel(packet.processId, packet.secretKey);
        return;
      }
      if (reader.buffered > 0) {
        // Bytes after an encryption request, before the handshake, could be injected by a
        // man in the middle; PostgreSQL refuses them for the same reason.
        throw new Refusal(
          SqlState.ProtocolViolation,
          'received unencrypted data after an encryption request',
        );
      }
      if (packet.kind === 'ssl-request' && ctx.tls !== null && !tlsActive) {
        raw.write(sslAccepted);
        reader.detach();
        socket = new TLSSocket(raw, { isServer: true, secureContext: ctx.tls });
        reader.attach(socket);
        await reader.event('secure');
        tlsActive = true;
      } else {
        socket.write(encryptionRefused);
      }
      packet = await reader.readStartupPacket();
    }

    const params = packet.params;
    const user = params.get('user');
    if (user === undefined || user === '') {
      throw new Refusal(
        SqlState.InvalidAuthorization,
        'no user name specified in the startup message',
      );
    }
    const database = params.get('database') || user;
    const replication = params.get('replication');
    if (
      replication !== undefined &&
      !['false', 'off', 'no', '0'].includes(replication.toLowerCase())
    ) {
      throw new Refusal(
        SqlState.FeatureNotSupported,
        'replication connections are not supported through Portcullis',
      );
    }
    const unrecognized = [...params.keys()].filter((name) => name.startsWith('_pq_.'));
    if (packet.minor > 0 || unrecognized.length > 0)
      socket.write(negotiateProtocolVersion(0, unrecognized));

    if (!tlsActive && !config.postgres.insecure) {
      throw new Refusal(
        SqlState.InvalidAuthorization,
        'this Portcullis listener requires TLS',
        'connect with sslmode=require (or verify-full) so your token is not sent in cleartext',
      );
    }

    socket.write(authenticationCleartextPassword);
    const answer = await reader.readFrame(MAX_PASSWORD_FRAME);
    if (answer.type === FrontendCode.Terminate) {
      socket.destroy();
      return;
    }
    if (answer.type !== FrontendCode.Password) {
      throw new Refusal(
        SqlState.ProtocolViolation,
        `expected a password message, got message type ${JSON.stringify(String.fromCharCode(answer.type))}`,
      );
    }
    const password = decodePassword(answer.body, 0, answer.body.length);
    const clientInfo: ClientInfo = {
      address: raw.remoteAddress ?? '',
      port: raw.remotePort ?? 0,
      application: params.get('application_name') ?? '',
      user,
      tls: tlsActive,
    };
    const refuseLogin = (
      refusal: Refusal,
      reason: string,
      person: Person | null,
      authMethod: AuthMethod,
    ): never => {
      new SessionRecorder(ctx.sink, {
        identity: { person: person ?? UNKNOWN_PERSON, agent: null, authMethod },
        resource: database,
        upstreamUser: '',
        client: clientInfo,
      }).authFailed({ reason, code: refusal.sqlState });
      throw refusal;
    };
    const resource = Object.hasOwn(config.resources, database)
      ? config.resources[database]
      : undefined;
    const grant = config.tokens[sha256Hex(password)];
    /** The access grant the session runs under, when the person has no standing access. */
    let accessGrant: AccessGrant | null = null;
    const grantFor = async (person: Person): Promise<AccessGrant | null> => {
      if (ctx.access === undefined || resource?.accessRequests == null) return null;
      try {
        return await ctx.access.activeGrant(person.subject, resource.name);
      } catch (err) {
        // Fails closed: without the state database no grant can be shown to exist.
        logger.warn({ err, resource: resource.name }, 'access grants could not be read');
        return null;
      }
    };
    const hint = (reason: string): string | undefined =>
      reason === 'no-access' && resource?.accessRequests != null
        ? requestHint(resource.name)
        : undefined;
    let identity: SessionIdentity;
    if (grant !== undefined) {
      if (resource === undefined) {
        throw new Refusal(
          SqlState.UnknownDatabase,
          `database "${database}" does not exist`,
          `the database name selects a Portcullis resource; known to you: ${allowedResources(config, grant.resources).join(', ') || 'none'}`,
        );
      }
      if (
        grant.resources !== null &&
        !grant.resources.includes(resource.name) &&
        (accessGrant = await grantFor(grant.person)) === null
      ) {
        refuseLogin(
          new Refusal(
            SqlState.InsufficientPrivilege,
            `permission denied for database "${database}"`,
            hint('no-access') ?? `${grant.person.email} may not use resource ${resource.name}`,
          ),
          'no-access',
          grant.person,
          'static-token',
        );
      }
      identity = { person: grant.person, agent: null, authMethod: 'static-token' };
    } else if (ctx.identity !== null && looksLikeCredential(password)) {
      if (resource === undefined) {
        throw new Refusal(SqlState.UnknownDatabase, `database "${database}" does not exist`);
      }
      try {
        identity = await ctx.identity.authenticate(
          password,
          resource.name,
          async (person) => (accessGrant = await grantFor(person)) !== null,
        );
      } catch (err) {
        if (!(err instanceof AuthRefusal)) throw err;
        logger.info(
          { client: raw.remoteAddress, reason: err.reason },
          'gateway credential refused',
        );
        identity = refuseLogin(
          new Refusal(err.sqlState, err.message, hint(err.reason)),
          err.reason,
          err.person,
          'oidc',
        );
      }
    } else {
      logger.info({ client: raw.remoteAddress, user }, 'authentication failed: unknown token');
      identity = refuseLogin(
        new Refusal(
          SqlState.InvalidPassword,
          `password authentication failed for user "${user}"`,
          ctx.identity === null
            ? 'the password is your Portcullis token'
            : 'the password is your Portcullis credential (portcullis credentials) or token',
        ),
        'unknown-token',
        null,
        'static-token',
      );
    }
    if (resource === undefined) throw new Error('unreachable: resource checked above');

    const upstreamParams = new Map<string, string>();
    for (const [name, value] of params) {
      if (!RESERVED_PARAMS.has(name) && !name.startsWith('_pq_.')) upstreamParams.set(name, value);
    }
    upstreamParams.set(
      'application_name',
      applicationName(
        params.get('application_name') ?? '',
        identity.agent === null
          ? identity.person.subject
          : `${identity.person.subject} via ${identity.agent.id}`,
      ),
    );
    const sessionId = randomUUID();
    const provisioner = ctx.ephemeralRoles.get(resource.name) ?? null;
    if (provisioner !== null) {
      try {
        role = await provisioner.acquire(identity.person, sessionId);
      } catch (err) {
        logger.warn({ err, resource: resource.name }, 'session role could not be created');
        throw new Refusal(
          SqlState.UnableToConnect,
          `could not prepare a database role for this session on resource "${resource.name}"`,
          'try again later; the gateway log has the details',
        );
      }
    }
    try {
      upstream = await connectUpstream(
        role === null ? resource : { ...resource, user: role.user, password: role.password },
        upstreamParams,
      );
    } catch (err) {
      logger.warn({ err, resource: resource.name }, 'upstream login failed');
      throw new Refusal(
        SqlState.UnableToConnect,
        `could not connect to the upstream server of resource "${resource.name}"`,
        'try again later; the gateway log has the details',
      );
    }
    clearTimeout(timer);
    if (socket.destroyed) {
      upstream.socket.destroy();
      return;
    }
    for (const [name, value] of upstream.parameters) {
      const unreadable = unreadableSetting(name, value);
      if (unreadable !== null) throw new Refusal(SqlState.FeatureNotSupported, unreadable);
    }
    const maskingRuntime = ctx.masking.get(resource.name) ?? null;
    let masked: MaskedSession | null = null;
    if (maskingRuntime !== null) {
      try {
        masked = await maskingRuntime.openSession(upstream.socket, identity.person);
      } catch (err) {
        logger.warn({ err, resource: resource.name }, 'masking could not start for a session');
        throw new Refusal(
          SqlState.UnableToConnect,
          `masking applies to resource "${resource.name}" and could not be prepared, so the session was refused`,
          'try again later; the gateway log has the details',
        );
      }
      if (socket.destroyed) {
        upstream.socket.destroy();
        return;
      }
    }

    const recorder = new SessionRecorder(ctx.sink, {
      identity,
      resource: resource.name,
      upstreamUser: role?.user ?? resource.user,
      client: clientInfo,
      sessionId,
    });
    // Before anything else holds the session: a start that cannot be recorded refuses it.
    recorder.start(
      accessGrant === null
        ? undefined
        : {
            id: accessGrant.id,
            endsUs: accessGrant.endsAt * 1000,
            by: accessGrant.approvers.map((p) => ({ subject: p.subject, email: p.email })),
          },
    );
    const key = ctx.cancels.register(resource, upstream.processId, upstream.secretKey, () =>
      relay.cancelHeld(),
    );
    const sessionRole = role;
    const approvals = ctx.approvals;
    const sessionIdentity = identity;
    let unwatchGrant: (() => void) | null = null;
    let sessionClosed = false;
    const relay = new PgRelay(socket, upstream.socket, recorder, {
      maxFrameBytes: config.limits.maxFrameBytes,
      clientWriteBufferBytes: config.limits.clientWriteBufferBytes,
      judge: createJudge({
        analyzer: ctx.analyzer,
        policy: resource.policy,
        person: identity.person,
        agentActing: identity.agent !== null,
        recordLiterals: config.events.recordLiterals,
        masking: masked?.masking ?? null,
      }),
      planner: masked?.planner ?? null,
      ...(masked === null || ctx.maskingWorkers === null
        ? {}
        : {
            maskingPool: ctx.maskingWorkers.pool,
            workerThresholdBytes: ctx.maskingWorkers.thresholdBytes,
            ...(ctx.maskingWorkers.fault === undefined
              ? {}
              : { maskingFault: ctx.maskingWorkers.fault }),
          }),
      ...(maskingRuntime === null
        ? {}
        : { onStatement: (record) => maskingRuntime.statementDone(record) }),
      ...(approvals === undefined
        ? {}
        : {
            requestApproval: (judgement, onSettled) => {
              const policy = resource.approvals.get(judgement.decision.rule);
              if (policy === undefined) return null;
              const subject = {
                sessionId,
                resource: resource.name,
                person: sessionIdentity.person,
                agent: sessionIdentity.agent,
                text: judgement.recordedText,
                kind: judgement.kind,
                tables: judgement.tables,
                rule: judgement.decision.rule,
                message: judgement.decision.message,
              };
              return approvals.request(subject, policy, onSettled);
            },
          }),
      resource: resource.name,
      logger,
      eventsAccepting: () => sinkAccepts(ctx.sink),
      processIds: { upstream: upstream.processId, client: key.processId },
      onClose: () => {
        ctx.cancels.unregister(key.processId);
        ctx.sessions.delete(relay);
        void sessionRole?.release();
        sessionClosed = true;
        unwatchGrant?.();
      },
    });
    ctx.sessions.add(relay);
    socket.cork();
    socket.write(authenticationOk);
    for (const frame of upstream.parameterFrames) socket.write(frame);
    socket.write(backendKeyData(key.processId, key.secretKey));
    socket.write(readyForQuery('I'));
    socket.uncork();
    const leftover = reader.takeRest();
    reader.detach();
    relay.start(leftover, masked?.leftover ?? upstream.leftover);
    if (accessGrant !== null && ctx.access !== undefined && resource.accessRequests !== null) {
      // Warned before the grant ends and closed when it ends or is revoked (access-sessions.ts).
      ctx.access
        .watch(accessGrant, resource.accessRequests, {
          notice: (message) => relay.notice(message),
          end: (code, message, reason) => relay.terminate(code, message, reason),
        })
        .then(
          (stop) => {
            if (sessionClosed) stop();
            else unwatchGrant = stop;
          },
          (err: unknown) => {
            logger.warn({ err }, 'a session under an access grant could not be watched');
            relay.terminate(
              SqlState.InsufficientPrivilege,
              'your access grant could not be tracked, so the session was closed',
              'access-untracked',
            );
          },
        );
    }
  } catch (err) {
    clearTimeout(timer);
    reader.detach();
    upstream?.socket.destroy();
    void role?.release();
    refuse(socket, err, logger);
  }
}

function refuse(socket: Socket, err: unknown, logger: Logger): void {
  if (socket.destroyed) return;
  let message: Buffer;
  if (err instanceof Refusal) {
    message = fatal(err.sqlState, err.message, err.hint);
  } else if (isPortcullisError(err, 'PCL_ERR_SPOOL_FULL')) {
    logger.warn({ err }, 'session refused: its events cannot be recorded');
    message = fatal(EVENTS_REFUSED_SQLSTATE, err.message, EVENTS_REFUSED_HINT);
  } else if (isPortcullisError(err, 'PCL_ERR_PROTOCOL_UNSUPPORTED')) {
    message = fatal(SqlState.FeatureNotSupported, err.message);
  } else if (err instanceof PortcullisError && err.code.startsWith('PCL_ERR_PROTOCOL_')) {
    message = fatal(SqlState.ProtocolViolation, err.message);
  } else {
    logger.debug({ err }, 'client connection ended during startup');
    socket.destroy();
    return;
  }
  socket.end(message);
  socket.setTimeout(5_000, () => socket.destroy());
}

function allowedResources(config: GatewayConfig, allowed: readonly string[] | null): string[] {
  return Object.keys(config.resources).filter((name) => allowed === null || allowed.includes(name));
}

/** `application_name` upstream: the client's, tagged with the person, within 63 bytes. */
function applicationName(client: string, subject: string): string {
  const tag = `portcullis:${subject}`;
  const full = client === '' ? tag : `${client} (${tag})`;
  return Buffer.from(full, 'utf8')
    .subarray(0, 63)
    .toString('utf8')
    .replace(/\uFFFD$/, '');
}
