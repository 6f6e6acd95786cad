import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { promisify } from 'node:util';
import { PortcullisError, isPortcullisError, silentLogger, type Logger } from '@portcullis/core';
import { terminate } from '@portcullis/protocol-pg';
import type { PostgresResource } from '../config/load-config.js';
import {
  UpstreamQueryError,
  runSimpleQuery,
  type SimpleQueryResult,
} from '../masking/simple-query.js';
import { connectUpstream } from './connect-upstream.js';

// Per-session ephemeral upstream roles. See docs/configuration.md ("Ephemeral upstream roles") for the setup an
// operator needs (the admin and template roles) and why each privilege is there.

const pbkdf2Async = promisify(pbkdf2);

/** Longest role name PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer names are truncated. */
export const MAX_ROLE_NAME_BYTES = 63;
/** Longest prefix accepted, so that at least 31 bytes of the person's id fit in a name. */
export const MAX_ROLE_PREFIX_LENGTH = 20;
/** Length of the random part that ends every ephemeral role name. */
export const ROLE_SUFFIX_LENGTH = 10;
/** PBKDF2 iterations of the verifiers {@link scramSha256Verifier} computes (PostgreSQL's default). */
export const SCRAM_ITERATIONS = 4096;
/** `application_name` of the admin side connection, as pg_stat_activity shows it. */
export const EPHEMERAL_ADMIN_APPLICATION_NAME = 'portcullis ephemeral roles';

/** The 32 lower-case letters and digits of the random suffix (5 bits each). */
const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
const PREFIX_SHAPE = /^[a-z][a-z0-9_]*$/;
const DEFAULT_QUERY_TIMEOUT_MS = 10_000;
const DEFAULT_RELEASE_WAIT_MS = 5_000;
const DEFAULT_SWEEP_INTERVAL_MS = 60_000;
const DEFAULT_DROP_ATTEMPTS = 5;
const DEFAULT_RETRY_DELAY_MS = 100;
/** Poll interval while waiting for a session's backend to exit before its role is dropped. */
const BACKEND_POLL_MS = 50;
const MAX_FRAME_BYTES = 1024 * 1024;
/** Longest subject, email or session id written into a role's comment. */
const MAX_COMMENT_FIELD = 256;

/** Who a session is for. */
export interface EphemeralRolePerson {
  /** The stable id of the person (OIDC `sub`); its readable part goes into the role name. */
  readonly subject: string;
  readonly email: string;
}

/** A login role made for one session. */
export interface EphemeralRole {
  /** The role name to log in upstream with. */
  readonly user: string;
  /** The role's password (43 characters). Never log it. */
  readonly password: string;
  /** When the role stops accepting logins (server clock). */
  readonly validUntil: Date;
  /**
   * Drops the role, once the session's backend has exited. Idempotent (later calls return the
   * first call's promise) and never rejects: a role it cannot drop is logged and left to
   * {@link EphemeralRoleProvisioner.sweepExpired}.
   */
  release(): Promise<void>;
}

/** Construction options of an {@link EphemeralRoleProvisioner}. */
export interface EphemeralRoleOptions {
  /**
   * The resource the roles are for: host, port, database, TLS and connect timeout are used;
   * its own user and password are not.
   */
  readonly resource: PostgresResource;
  /**
   * The role that creates and drops the ephemeral roles: CREATEROLE, not superuser (see
   * docs/configuration.md for the exact grants). Null password for trust authentication.
   */
  readonly admin: { readonly user: string; readonly password: string | null };
  /** The NOLOGIN role whose privileges every ephemeral role inherits. */
  readonly templateRole: string;
  /**
   * How long a role accepts logins (`VALID UNTIL`), in milliseconds. Also how long a role left
   * behind by a crashed gateway can outlive it before {@link EphemeralRoleProvisioner.sweepExpired}
   * drops it. PostgreSQL checks it only at login, so a session may outlast it.
   */
  readonly ttlMs: number;
  /** Start of every role name: a lower-case letter, then [a-z0-9_], at most 20 characters. */
  readonly prefix: string;
  readonly logger?: Logger;
  /** Time allowed for each admin query, in milliseconds; default 10 000. */
  readonly queryTimeoutMs?: number;
  /** How long {@link EphemeralRole.release} waits for the session's backend to exit; default 5 000. */
  readonly releaseWaitMs?: number;
  /** How often {@link EphemeralRoleProvisioner.start} sweeps, in milliseconds; default 60 000; 0 never. */
  readonly sweepIntervalMs?: number;
  /** Attempts at dropping a role before giving up on transient errors; default 5. */
  readonly dropAttempts?: number;
  /** First delay between attempts (doubling after each), in milliseconds; default 100. */
  readonly retryDelayMs?: number;
}

/** The admin side connection: logged in, idle between queries. */
interface AdminConnection {
  readonly socket: Socket;
  /** Bytes read past the last ReadyForQuery; scanned before the next answer. */
  pending: Buffer;
  /** Server clock minus local clock, measured at login, in milliseconds. */
  readonly clockOffsetMs: number;
}

/** Runs one statement batch on the admin connection. */
type Query = (sql: string) => Promise<SimpleQueryResult>;

/**
 * Creates a short-lived PostgreSQL login role for each gateway session and drops it afterwards,
 * so the upstream's own logs, `pg_stat_activity` and `current_user` name the person rather
 * than a shared service account.
 *
 * Each role is `LOGIN INHERIT` and a member of the template role (so it holds exactly the
 * template's privileges, without `SET ROLE`), has `CONNECTION LIMIT 1`, a `VALID UNTIL`
 * backstop, none of the SUPERUSER, CREATEDB, CREATEROLE, REPLICATION or BYPASSRLS attributes,
 * and a random password sent only as a SCRAM-SHA-256 verifier computed here: the cleartext
 * never reaches the server, its statement log or `pg_authid`.
 *
 * All admin work runs on one side connection, opened on first use, reopened after a loss, one
 * statement batch at a time. {@link close} ends it.
 */
export class EphemeralRoleProvisioner {
  readonly #resource: PostgresResource;
  readonly #adminResource: PostgresResource;
  readonly #template: string;
  readonly #ttlMs: number;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #queryTimeoutMs: number;
  readonly #releaseWaitMs: number;
  readonly #sweepIntervalMs: number;
  readonly #dropAttempts: number;
  readonly #retryDelayMs: number;
  #connection: AdminConnection | null = null;
  /** Tail of the chain that serializes admin work. */
  #queue: Promise<void> = Promise.resolve();
  readonly #releases = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: EphemeralRoleOptions) {
    const invalid = (why: string): PortcullisError =>
      new PortcullisError(
        'PCL_ERR_CONFIG_INVALID',
        `ephemeral roles of resource ${options.resource.name}: ${why}`,
      );
    if (!PREFIX_SHAPE.test(options.prefix) || options.prefix.length > MAX_ROLE_PREFIX_LENGTH) {
      throw invalid(
        `the prefix must be a lower-case letter then [a-z0-9_], at most ${MAX_ROLE_PREFIX_LENGTH} characters`,
      );
    }
    if (options.prefix.startsWith('pg_')) throw invalid('the prefix cannot start with pg_');
    if (!validRoleName(options.templateRole)) throw invalid('the template role name is invalid');
    if (!validRoleName(options.admin.user)) throw invalid('the admin role name is invalid');
    if (!Number.isSafeInteger(options.ttlMs) || options.ttlMs < 1000) {
      throw invalid('the TTL must be at least 1000 ms');
    }
    this.#resource = options.resource;
    this.#adminResource = {
      ...options.resource,
      user: options.admin.user,
      password: options.admin.password,
    };
    this.#template = options.templateRole;
    this.#ttlMs = options.ttlMs;
    this.#prefix = options.prefix;
    this.#logger = options.logger ?? silentLogger;
    this.#queryTimeoutMs = options.queryTimeoutMs ?? DEFAULT_QUERY_TIMEOUT_MS;
    this.#releaseWaitMs = options.releaseWaitMs ?? DEFAULT_RELEASE_WAIT_MS;
    this.#sweepIntervalMs = options.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
    this.#dropAttempts = Math.max(1, options.dropAttempts ?? DEFAULT_DROP_ATTEMPTS);
    this.#retryDelayMs = options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS;
  }

  /**
   * Sweeps once (see {@link sweepExpired}), then every `sweepIntervalMs` in the background.
   * Resolves with the number of roles the first sweep dropped; rejects when it could not run
   * (the upstream is unreachable or refuses the admin), the background sweeps still scheduled.
   */
  async start(): Promise<number> {
    this.#assertOpen();
    if (this.#timer === null && this.#sweepIntervalMs > 0) {
      this.#timer = setInterval(() => {
        this.sweepExpired().catch((err: unknown) => {
          this.#logger.warn(
            { err, resource: this.#resource.name },
            'sweeping expired ephemeral roles failed',
          );
        });
      }, this.#sweepIntervalMs).unref();
    }
    return this.sweepExpired();
  }

  /**
   * Creates a login role for one session of `person`. Rejects with a PortcullisError
   * (`PCL_ERR_UPSTREAM_CONNECT`) when the admin connection cannot be opened or the server
   * refuses the role; the message never holds the password.
   */
  async acquire(person: EphemeralRolePerson, sessionId: string): Promise<EphemeralRole> {
    this.#assertOpen();
    const user = ephemeralRoleName(this.#prefix, person);
    const password = randomBytes(32).toString('base64url');
    const verifier = await scramSha256Verifier(password);
    const comment = roleComment(person, sessionId);
    let validUntil = new Date(0);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#exclusive(async (query, connection) => {
          validUntil = new Date(Date.now() + connection.clockOffsetMs + this.#ttlMs);
          await query(
            createRoleSql({
              role: user,
              template: this.#template,
              admin: this.#adminResource.user,
              verifier,
              validUntil,
              comment,
            }),
          );
        });
        break;
      } catch (err) {
        // The first attempt may have committed before the connection died: the role exists,
        // with this very verifier (its random name is ours alone).
        if (attempt > 1 && err instanceof UpstreamQueryError && err.fields.code === '42710') break;
        // A connection that died while idle (server restart, idle_session_timeout, a DBA's
        // pg_terminate_backend) shows only when used: try once more on a new one.
        if (attempt === 1 && isPortcullisError(err, 'PCL_ERR_UPSTREAM_LOST') && !this.#closed) {
          continue;
        }
        throw new PortcullisError(
          'PCL_ERR_UPSTREAM_CONNECT',
          `cannot create an ephemeral role on upstream ${this.#resource.name}: ${errorText(err)}`,
          { cause: err },
        );
      }
    }
    this.#logger.info(
      { resource: this.#resource.name, role: user, subject: person.subject, sessionId },
      'ephemeral role created',
    );
    return new EphemeralRoleLease(user, password, validUntil, () => this.#release(user));
  }

  /**
   * Drops every role this provisioner's prefix names that is a member of the template role,
   * can log in, has passed its `VALID UNTIL`, and has no backend (a crashed gateway's leftovers;
   * a session that outlived the TTL keeps its role until it ends). Resolves with the number of
   * roles dropped; roles it could not drop are logged.
   */
  async sweepExpired(): Promise<number> {
    this.#assertOpen();
    const expired = await this.#exclusive(async (query) => {
      const result = await query(expiredRolesSql(this.#prefix, this.#template));
      return result.rows.map((row) => row[0]).filter((name): name is string => name != null);
    });
    let dropped = 0;
    for (const role of expired) {
      if (await this.#drop(role, 'swept')) dropped++;
    }
    if (expired.length > 0) {
      this.#logger.info(
        { resource: this.#resource.name, expired: expired.length, dropped },
        'swept expired ephemeral roles',
      );
    }
    return dropped;
  }

  /**
   * Stops the background sweeps, waits for releases in progress and queued admin work, and
   * closes the admin connection. Later calls to {@link acquire}, {@link sweepExpired} and
   * {@link start} reject; a role released after this is left to a later sweep.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    await Promise.all([...this.#releases]);
    await this.#queue;
    const connection = this.#connection;
    this.#connection = null;
    if (connection !== null && !connection.socket.destroyed) connection.socket.end(terminate);
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new PortcullisError(
        'PCL_ERR_UPSTREAM_CONNECT',
        `the ephemeral role provisioner of resource ${this.#resource.name} is closed`,
      );
    }
  }

  #release(role: string): Promise<void> {
    const done = this.#releaseNow(role);
    this.#releases.add(done);
    void done.then(() => this.#releases.delete(done));
    return done;
  }

  async #releaseNow(role: string): Promise<void> {
    if (this.#closed) {
      this.#logger.warn(
        { resource: this.#resource.name, role },
        'ephemeral role released after close; left to a later sweep',
      );
      return;
    }
    // The session's own connection is closing: give its backend time to exit (and drop its
    // temporary tables) rather than drop a role that is still logged in.
    const deadline = Date.now() + this.#releaseWaitMs;
    for (;;) {
      let state: { exists: boolean; backends: number };
      try {
        state = await this.#exclusive(async (query) => roleState(await query(roleStateSql(role))));
      } catch (err) {
        if (Date.now() < deadline && transient(err)) {
          await sleep(BACKEND_POLL_MS);
          continue;
        }
        this.#logger.error(
          { resource: this.#resource.name, role, err: errorSummary(err) },
          'cannot drop an ephemeral role; left to a later sweep',
        );
        return;
      }
      if (!state.exists) return;
      if (state.backends === 0) break;
      if (Date.now() >= deadline) {
        this.#logger.warn(
          { resource: this.#resource.name, role, backends: state.backends },
          'ephemeral role still has a backend after its session ended; left to a later sweep',
        );
        return;
      }
      await sleep(BACKEND_POLL_MS);
    }
    await this.#drop(role, 'released');
  }

  /** Drops `role` and whatever it owns, retrying transient errors; true when it is gone. */
  async #drop(role: string, why: 'released' | 'swept'): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#exclusive((query) => query(dropRoleSql(role, this.#template)));
        this.#logger.info({ resource: this.#resource.name, role, why }, 'ephemeral role dropped');
        return true;
      } catch (err) {
        // Gone already (another gateway process or its sweeper was first), or something else
        // is missing (the template role): ask which.
        if (err instanceof UpstreamQueryError && err.fields.code === '42704') {
          const gone = await this.#exclusive(
            async (query) => !roleState(await query(roleStateSql(role))).exists,
          ).catch(() => false);
          if (gone) return true;
        }
        if (attempt < this.#dropAttempts && transient(err) && !this.#closed) {
          await sleep(this.#retryDelayMs * 2 ** (attempt - 1));
          continue;
        }
        this.#logger.error(
          { resource: this.#resource.name, role, attempts: attempt, err: errorSummary(err) },
          'cannot drop an ephemeral role; left to a later sweep',
        );
        return false;
      }
    }
  }

  /**
   * Runs `work` with the admin connection to itself (opening it when needed), after any work
   * queued before. A lost connection is forgotten, so the next work opens a new one.
   */
  #exclusive<T>(work: (query: Query, connection: AdminConnection) => Promise<T>): Promise<T> {
    const run = this.#queue.then(async () => {
      const connection = await this.#connect();
      const query: Query = async (sql) => {
        const result = await runSimpleQuery(connection.socket, sql, {
          maxFrameBytes: MAX_FRAME_BYTES,
          timeoutMs: this.#queryTimeoutMs,
          pending: connection.pending,
        });
        connection.pending = result.leftover;
        return result;
      };
      try {
        return await work(query, connection);
      } catch (err) {
        // Batches never open a transaction block, so a refused statement leaves the connection
        // idle and usable; anything else leaves it in an unknown state.
        if (err instanceof UpstreamQueryError) connection.pending = Buffer.alloc(0);
        else this.#forget(connection);
        throw err;
      }
    });
    this.#queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  async #connect(): Promise<AdminConnection> {
    const current = this.#connection;
    if (current !== null && !current.socket.destroyed) return current;
    this.#connection = null;
    const upstream = await connectUpstream(
      this.#adminResource,
      new Map([['application_name', EPHEMERAL_ADMIN_APPLICATION_NAME]]),
    );
    const socket = upstream.socket;
    // Between queries nobody else listens: a reset must not become an uncaught 'error'.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (this.#connection?.socket === socket) this.#connection = null;
    });
    const before = Date.now();
    const result = await runSimpleQuery(socket, CONNECTION_SETUP_SQL, {
      maxFrameBytes: MAX_FRAME_BYTES,
      timeoutMs: this.#queryTimeoutMs,
      pending: upstream.leftover,
    }).catch((err: unknown) => {
      socket.destroy();
      throw err;
    });
    const serverMs = Number(result.rows[0]?.[0]);
    const localMs = (before + Date.now()) / 2;
    const connection: AdminConnection = {
      socket,
      pending: result.leftover,
      clockOffsetMs: Number.isFinite(serverMs) ? serverMs - localMs : 0,
    };
    this.#connection = connection;
    this.#logger.debug(
      { resource: this.#resource.name, clockOffsetMs: Math.round(connection.clockOffsetMs) },
      'ephemeral role admin connection opened',
    );
    return connection;
  }

  #forget(connection: AdminConnection): void {
    connection.socket.destroy();
    if (this.#connection === connection) this.#connection = null;
  }
}

/** What a caller gets from acquire; the password is a getter, so JSON and loggers skip it. */
class EphemeralRoleLease implements EphemeralRole {
  readonly user: string;
  readonly validUntil: Date;
  readonly #password: string;
  readonly #drop: () => Promise<void>;
  #released: Promise<void> | null = null;

  constructor(user: string, password: string, validUntil: Date, drop: () => Promise<void>) {
    this.user = user;
    this.validUntil = validUntil;
    this.#password = password;
    this.#drop = drop;
  }

  get password(): string {
    return this.#password;
  }

  release(): Promise<void> {
    this.#released ??= this.#drop();
    return this.#released;
  }

  toJSON(): { user: string; validUntil: Date } {
    return { user: this.user, validUntil: this.validUntil };
  }
}

// Literals below rely on standard_conforming_strings (backslash is an ordinary character);
// set here rather than trusted from the server's configuration. The search path is pg_catalog
// alone so a user's objects cannot stand in for the catalog's.
const CONNECTION_SETUP_SQL = `SET standard_conforming_strings = on;
SET search_path = pg_catalog;
SELECT pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000`;

/** Quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Quotes an SQL string literal (standard_conforming_strings on). */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function validRoleName(name: string): boolean {
  return name.length > 0 && !name.includes('\0') && Buffer.byteLength(name) <= MAX_ROLE_NAME_BYTES;
}

/**
 * The readable part of a role name: the subject folded to [a-z0-9_] (accents dropped, every
 * other run of characters one `_`), at most `maxLength` characters. Falls back to the email's
 * local part when nothing of the subject is left, then to `anon`.
 */
export function readableRolePart(person: EphemeralRolePerson, maxLength: number): string {
  const fold = (text: string): string =>
    text
      .normalize('NFKD')
      .replace(/\p{M}/gu, '')
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .slice(0, maxLength)
      .replace(/^_+|_+$/g, '');
  const local = person.email.split('@')[0] ?? '';
  return fold(person.subject) || fold(local) || 'anon';
}

/**
 * `<prefix><readable subject>_<10 random characters>`: only [a-z0-9_], at most 63 bytes, so
 * PostgreSQL keeps it whole and it needs no quoting in a log line.
 */
export function ephemeralRoleName(
  prefix: string,
  person: EphemeralRolePerson,
  random: Buffer = randomBytes(ROLE_SUFFIX_LENGTH),
): string {
  let suffix = '';
  for (let i = 0; i < ROLE_SUFFIX_LENGTH; i++) {
    suffix += SUFFIX_ALPHABET[(random[i] ?? 0) & 31];
  }
  const room = MAX_ROLE_NAME_BYTES - prefix.length - 1 - ROLE_SUFFIX_LENGTH;
  return `${prefix}${readableRolePart(person, room)}_${suffix}`;
}

/**
 * A SCRAM-SHA-256 verifier in PostgreSQL's `pg_authid.rolpassword` format,
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802, 7677). Given as the
 * password of CREATE ROLE it is stored as is, so the cleartext never reaches the server.
 * `password` must be printable ASCII, which SASLprep leaves unchanged.
 */
export async function scramSha256Verifier(
  password: string,
  salt: Buffer = randomBytes(16),
  iterations: number = SCRAM_ITERATIONS,
): Promise<string> {
  if (!/^[\x21-\x7e]+$/.test(password)) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_INVALID',
      'a SCRAM verifier is computed here only for printable ASCII passwords',
    );
  }
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The role comment: which session and person the role is for (control characters replaced). */
export function roleComment(person: EphemeralRolePerson, sessionId: string): string {
  const clean = (text: string): string =>
    // eslint-disable-next-line no-control-regex
    text.replace(/[\u0000-\u001f\u007f]/g, '?').slice(0, MAX_COMMENT_FIELD);
  return `portcullis session ${clean(sessionId)} for ${clean(person.subject)} <${clean(person.email)}>`;
}

/** What {@link createRoleSql} writes. */
export interface CreateRoleSpec {
  readonly role: string;
  readonly template: string;
  /** The admin role, made a member so it may REASSIGN and DROP what the role owns. */
  readonly admin: string;
  readonly verifier: string;
  readonly validUntil: Date;
  readonly comment: string;
}

/**
 * CREATE ROLE and COMMENT ON ROLE as one statement batch (one implicit transaction: both or
 * neither). INHERIT: the role holds the template's privileges directly, so the session needs no
 * SET ROLE and `current_user` stays the person's role in every row it writes and every log line.
 */
export function createRoleSql(spec: CreateRoleSpec): string {
  const role = quoteIdent(spec.role);
  return `CREATE ROLE ${role} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 1 ENCRYPTED PASSWORD ${quoteLiteral(spec.verifier)} VALID UNTIL ${quoteLiteral(spec.validUntil.toISOString())} IN ROLE ${quoteIdent(spec.template)} ROLE ${quoteIdent(spec.admin)};
COMMENT ON ROLE ${role} IS ${quoteLiteral(spec.comment)}`;
}

/**
 * Hands what the role owns in this database to the template, drops the privileges granted to
 * it, then the role: one implicit transaction. Other databases are out of reach (a role owning
 * objects there fails with 2BP01 and is logged).
 */
export function dropRoleSql(role: string, template: string): string {
  const r = quoteIdent(role);
  return `REASSIGN OWNED BY ${r} TO ${quoteIdent(template)};
DROP OWNED BY ${r};
DROP ROLE ${r}`;
}

/** Whether `role` exists and how many backends it has. */
export function roleStateSql(role: string): string {
  const r = quoteLiteral(role);
  return `SELECT (SELECT pg_catalog.count(*) FROM pg_catalog.pg_roles WHERE rolname = ${r}),
  (SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity WHERE usename = ${r})`;
}

/** Expired login roles with `prefix` that are members of `template` and have no backend. */
export function expiredRolesSql(prefix: string, template: string): string {
  return `SELECT r.rolname FROM pg_catalog.pg_roles r
WHERE pg_catalog.starts_with(r.rolname, ${quoteLiteral(prefix)})
  AND r.rolcanlogin AND r.rolvaliduntil < pg_catalog.now()
  AND EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m JOIN pg_catalog.pg_roles t ON t.oid = m.roleid
    WHERE m.member = r.oid AND t.rolname = ${quoteLiteral(template)})
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.usesysid = r.oid)
ORDER BY r.rolname`;
}

function roleState(result: SimpleQueryResult): { exists: boolean; backends: number } {
  const row = result.rows[0];
  return { exists: Number(row?.[0]) > 0, backends: Number(row?.[1] ?? 0) };
}

/**
 * SQLSTATEs worth another try: dependent objects still exist (a session's temporary table not
 * yet gone) or in use, serialization failure, deadlock, statement timeout, shutdown, too many
 * connections or out of resources, connection exceptions.
 */
const TRANSIENT_STATES = /^(2BP01|55006|40001|40P01|57014|57P0\d|53\w{3}|08\w{3})$/;

function transient(err: unknown): boolean {
  if (err instanceof UpstreamQueryError) return TRANSIENT_STATES.test(err.fields.code);
  return err instanceof PortcullisError ? err.retriable : true;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** For the log: code and message, no stack (the message never holds a secret). */
function errorSummary(err: unknown): { code?: string; message: string } {
  if (err instanceof UpstreamQueryError) return { code: err.fields.code, message: err.message };
  if (err instanceof PortcullisError) return { code: err.code, message: err.message };
  return { message: errorText(err) };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}
