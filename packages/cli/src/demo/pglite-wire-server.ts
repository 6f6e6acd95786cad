import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;
const CANCEL_REQUEST_CODE = 80877102;
const MAX_STARTUP_PACKET_LENGTH = 10_000;
const MAX_MESSAGE_LENGTH = 64 * 1024 * 1024;
const TICK_MS = 200;

const code = (letter: string): number => letter.charCodeAt(0);
/** Frontend messages PostgresMain understands. PGlite spins forever on any other type, so nothing else may reach it. */
const FORWARDED_TYPES = new Set([...'QPBDECHSF'].map(code));
/** Extended-query messages: from the first one to the next Sync the session must keep PGlite to itself. */
const EXTENDED_TYPES = new Set([...'PBDECH'].map(code));
/** COPY sub-protocol messages: sessions never enter COPY IN (see COPY_FROM_STDIN), and PostgreSQL ignores them outside it. */
const COPY_TYPES = new Set([...'dcf'].map(code));

const COPY_FROM_STDIN = /\bcopy\b[^;]*?\bfrom\s+stdin\b/i;
/** Runs instead of COPY FROM STDIN, which makes PGlite call exit(1) because it cannot wait for the client's data. */
const COPY_FROM_STDIN_REPLACEMENT =
  "DO $portcullis$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', " +
  "MESSAGE = 'COPY FROM STDIN is not supported by the embedded demo database', " +
  "HINT = 'Use INSERT statements instead.'; END $portcullis$";

// Custom (dotted) settings are invisible in pg_settings, so their names are learned from the SQL that sets them.
const SET_CUSTOM = /\bset\s+(?:session\s+)?((?:[a-z_][\w$]*|"[^"]+")\.(?:[a-z_][\w$]*|"[^"]+"))/gi;
const SET_CONFIG_CUSTOM = /\bset_config\s*\(\s*'([^']+)'/gi;
const CUSTOM_SETTING_NAME = /^[a-z_][\w$]*\.[a-z_][\w$]*$/;
const MAX_CUSTOM_SETTING_NAMES = 256;

/** Startup parameters that are not settings; client_encoding is left out because PGlite always speaks UTF8. */
const NON_SETTING_PARAMETERS = new Set([
  'user',
  'database',
  'options',
  'replication',
  'client_encoding',
]);

// Restored in this order: plain settings while still superuser, then the identity switches, role last.
const CAPTURE_SETTINGS_SQL = `
select name, setting as value from pg_catalog.pg_settings where source = 'session'
union all
select n, pg_catalog.current_setting(n, true) from pg_catalog.json_array_elements_text($1::json) as n
  where pg_catalog.current_setting(n, true) is not null
union all
select 'session_authorization', session_user::text where session_user::text <> $2
union all
select 'role', pg_catalog.current_setting('role') where pg_catalog.current_setting('role') <> 'none'`;
const RESTORE_SETTINGS_SQL = `select pg_catalog.set_config(e->>0, e->>1, false) from pg_catalog.json_array_elements($1::json) as e`;

/** Options for {@link PgliteWireServer}. */
export interface PgliteWireServerOptions {
  /** The database to serve; the server never closes it. */
  db: PGlite;
  /** Interface to listen on (default 127.0.0.1). */
  host?: string;
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Client connections served at once; further ones get SQLSTATE 53300 (default 32). */
  maxConnections?: number;
  /** While another session waits, a session idle inside a transaction is disconnected after this long (default 30 s). */
  idleInTransactionTimeoutMs?: number;
  /** A session kept waiting this long gets a NOTICE that says why (default 1 s). */
  waitNoticeAfterMs?: number;
  /** Opens a fresh database after the current one failed; without it the server stops serving after a failure. */
  reopen?: () => Promise<PGlite>;
  /** Reports notable events: database failures and recoveries, sessions ended by the idle timeout. */
  onEvent?: (message: string) => void;
}

interface Session {
  readonly id: number;
  readonly socket: Socket;
  stage: 'startup' | 'ready' | 'closed';
  /** Set when the session must be refused once its startup packet arrives. */
  refusal: { sqlState: string; message: string } | null;
  inbound: Buffer;
  readonly pending: Buffer[];
  /** An extended-query message ran since the last Sync. */
  inExtended: boolean;
  /** Protocol-level prepared statements, under their per-session names. */
  readonly statements: Set<string>;
  /** The session's own settings, as [name, value] pairs, while another session has PGlite. */
  settings: Array<[string, string]>;
  /** Any of this session's messages ran on PGlite. */
  touched: boolean;
  waitingSince: number;
  noticeSent: boolean;
  lastActivity: number;
}

/**
 * Serves one PGlite instance over the PostgreSQL wire protocol to several concurrent TCP clients.
 *
 * PGlite is a single backend session, so the server interleaves client sessions at protocol boundaries: a session
 * keeps PGlite from its first message until it is idle again (ReadyForQuery outside a transaction block, no pending
 * extended-query messages); other sessions queue meanwhile. Each session gets its own view of session state:
 * settings (SET, set_config, SET ROLE, SET SESSION AUTHORIZATION) are saved and restored when sessions take turns,
 * and protocol-level prepared statement names are prefixed per session. Connections are trusted: any user, database
 * and password are accepted, and the session always runs as PGlite's superuser `postgres` on database `postgres`.
 */
export class PgliteWireServer {
  #db: PGlite | null;
  readonly #host: string;
  readonly #port: number;
  readonly #maxConnections: number;
  readonly #idleInTransactionTimeoutMs: number;
  readonly #waitNoticeAfterMs: number;
  readonly #reopen: (() => Promise<PGlite>) | undefined;
  readonly #onEvent: (message: string) => void;

  #server: Server | null = null;
  #tick: ReturnType<typeof setInterval> | null = null;
  #stopped = false;
  #unavailable: string | null = null;
  #nextSessionId = 1;
  readonly #sessions = new Set<Session>();
  readonly #sockets = new Set<Socket>();
  /** Closed sessions whose leftovers (transaction, prepared statements) still have to be cleared. */
  readonly #closed: Session[] = [];
  /** The session that currently has PGlite to itself. */
  #owner: Session | null = null;
  /** The session whose settings PGlite currently holds. */
  #loaded: Session | null = null;
  /** PGlite's session settings may differ from the defaults. */
  #dirty = false;
  #pumping: Promise<void> | null = null;
  /** A client message is executing; PGlite yields to timers only between its synchronous steps. */
  #running = false;
  /** ParameterStatus values a fresh PGlite session reports. */
  #defaultParameters = new Map<string, string>();
  readonly #customSettingNames = new Set<string>();

  /** Creates a server; call {@link PgliteWireServer.start} to listen. */
  constructor(options: PgliteWireServerOptions) {
    this.#db = options.db;
    this.#host = options.host ?? '127.0.0.1';
    this.#port = options.port ?? 0;
    this.#maxConnections = options.maxConnections ?? 32;
    this.#idleInTransactionTimeoutMs = options.idleInTransactionTimeoutMs ?? 30_000;
    this.#waitNoticeAfterMs = options.waitNoticeAfterMs ?? 1_000;
    this.#reopen = options.reopen;
    this.#onEvent = options.onEvent ?? (() => {});
  }

  /** The database currently served (it changes after a failure and reopen), or null while none is. */
  get db(): PGlite | null {
    return this.#db;
  }

  /** Starts listening; resolves with the bound address (the real port when 0 was asked for). */
  async start(): Promise<{ host: string; port: number }> {
    if (this.#server) throw new Error('PgliteWireServer already started');
    if (!this.#db) throw new Error('PgliteWireServer has no database');
    this.#defaultParameters = await readDefaultParameters(this.#db);
    const server = createServer((socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, this.#host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (error) => this.#onEvent(`demo database listener error: ${error.message}`));
    this.#tick = setInterval(() => this.#checkWaiters(), TICK_MS);
    this.#tick.unref();
    const address = server.address() as AddressInfo;
    return { host: this.#host, port: address.port };
  }

  /** Disconnects every client, lets the statement in progress finish and stops listening. The database stays open. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#tick) clearInterval(this.#tick);
    const server = this.#server;
    const closed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    for (const socket of this.#sockets) socket.destroy();
    for (const session of [...this.#sessions]) this.#markClosed(session);
    await this.#pumping;
    await closed;
  }

  #accept(socket: Socket): void {
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    const now = Date.now();
    const session: Session = {
      id: this.#nextSessionId++,
      socket,
      stage: 'startup',
      refusal: null,
      inbound: Buffer.alloc(0),
      pending: [],
      inExtended: false,
      statements: new Set(),
      settings: [],
      touched: false,
      waitingSince: now,
      noticeSent: false,
      lastActivity: now,
    };
    if (this.#unavailable) {
      session.refusal = { sqlState: '57P03', message: this.#unavailable };
    } else if (this.#sessions.size >= this.#maxConnections) {
      session.refusal = { sqlState: '53300', message: 'sorry, too many clients already' };
    } else {
      this.#sessions.add(session);
    }
    socket.on('data', (chunk: Buffer) => this.#receive(session, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#markClosed(session);
    });
  }

  #receive(session: Session, chunk: Buffer): void {
    if (session.stage === 'closed') return;
    session.inbound =
      session.inbound.length === 0 ? chunk : Buffer.concat([session.inbound, chunk]);
    // Each taker returns false once it needs more bytes or has closed the session.
    for (;;) {
      const progressed =
        session.stage === 'startup' ? this.#takeStartupPacket(session) : this.#takeMessage(session);
      if (!progressed) break;
    }
    this.#schedule();
  }

  #takeStartupPacket(session: Session): boolean {
    const inbound = session.inbound;
    if (inbound.length < 8) return false;
    const length = inbound.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_PACKET_LENGTH) {
      this.#terminate(session, '08P01', 'invalid length of startup packet');
      return false;
    }
    if (inbound.length < length) return false;
    const packet = inbound.subarray(0, length);
    session.inbound = inbound.subarray(length);
    const version = packet.readInt32BE(4);
    if (version === SSL_REQUEST_CODE || version === GSSENC_REQUEST_CODE) {
      // Plain TCP only: clients on sslmode=prefer carry on unencrypted.
      session.socket.write('N');
      return true;
    }
    if (version === CANCEL_REQUEST_CODE) {
      // A running statement cannot be interrupted: PGlite runs it synchronously on this thread.
      session.socket.destroy();
      return false;
    }
    if (session.refusal) {
      this.#terminate(session, session.refusal.sqlState, session.refusal.message);
      return false;
    }
    const major = version >>> 16;
    const minor = version & 0xffff;
    if (major !== 3) {
      this.#terminate(
        session,
        '0A000',
        `unsupported frontend protocol ${major}.${minor}: server supports 3.0`,
      );
      return false;
    }
    const parameters = parseStartupParameters(packet.subarray(8));
    if (!parameters.get('user')) {
      this.#terminate(session, '28000', 'no PostgreSQL user name specified in startup packet');
      return false;
    }
    const replication = parameters.get('replication');
    if (
      replication !== undefined &&
      !['false', 'off', 'no', '0'].includes(replication.toLowerCase())
    ) {
      this.#terminate(
        session,
        '0A000',
        'replication connections are not supported by the embedded demo database',
      );
      return false;
    }
    const unsupportedOptions = [...parameters.keys()].filter((name) => name.startsWith('_pq_.'));
    session.settings = startupSettings(parameters);
    for (const [name] of session.settings) this.#learnSettingName(name);
    session.stage = 'ready';
    // Answered here rather than by PGlite: it would report the settings of whichever session ran last, and would
    // have to wait for PGlite while another session holds a transaction open.
    session.socket.write(
      Buffer.concat([
        ...(minor !== 0 || unsupportedOptions.length > 0
          ? [negotiateProtocolVersion(0, unsupportedOptions)]
          : []),
        backendMessage('R', int32(0)),
        ...this.#reportedParameters(session.settings),
        backendMessage('K', Buffer.concat([int32(session.id), randomBytes(4)])),
        readyForQuery('I'),
      ]),
    );
    return true;
  }

  #reportedParameters(settings: Array<[string, string]>): Buffer[] {
    const values = new Map(this.#defaultParameters);
    for (const [name, value] of settings) {
      const reported = [...values.keys()].find((key) => key.toLowerCase() === name.toLowerCase());
      if (reported) values.set(reported, value);
    }
    return [...values].map(([name, value]) =>
      backendMessage('S', Buffer.concat([cstring(name), cstring(value)])),
    );
  }

  #takeMessage(session: Session): boolean {
    const inbound = session.inbound;
    if (inbound.length < 5) return false;
    const type = inbound[0] as number;
    const length = inbound.readInt32BE(1);
    if (length < 4 || length > MAX_MESSAGE_LENGTH) {
      this.#terminate(session, '08P01', 'invalid message length');
      return false;
    }
    if (inbound.length < length + 1) return false;
    const message = inbound.subarray(0, length + 1);
    session.inbound = inbound.subarray(length + 1);
    if (type === code('X')) {
      session.socket.end();
      this.#markClosed(session);
      return false;
    }
    if (COPY_TYPES.has(type)) return true;
    if (type === code('p')) {
      this.#terminate(
        session,
        '08P01',
        'unexpected password message: the embedded demo database trusts every connection and never asks for one',
      );
      return false;
    }
    if (!FORWARDED_TYPES.has(type)) {
      this.#terminate(
        session,
        '08P01',
        `invalid frontend message type ${type} ("${String.fromCharCode(type)}")`,
      );
      return false;
    }
    if (session.pending.length === 0) {
      session.waitingSince = Date.now();
      session.noticeSent = false;
    }
    session.pending.push(message);
    return true;
  }

  /** Sends a FATAL error and drops the connection, like a backend that exits. */
  #terminate(session: Session, sqlState: string, message: string): void {
    if (!session.socket.destroyed) {
      session.socket.end(errorResponse('FATAL', sqlState, message));
      setTimeout(() => session.socket.destroy(), 1_000).unref();
    }
    this.#markClosed(session);
  }

  #markClosed(session: Session): void {
    if (session.stage === 'closed') return;
    session.stage = 'closed';
    session.pending.length = 0;
    this.#sessions.delete(session);
    if (session.touched || this.#owner === session) this.#closed.push(session);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#pumping) return;
    this.#pumping = this.#pump().finally(() => {
      this.#pumping = null;
    });
  }

  async #pump(): Promise<void> {
    for (;;) {
      let progressed: boolean;
      try {
        progressed = await this.#step();
      } catch (error) {
        await this.#recover(error);
        progressed = this.#db !== null;
      }
      if (!progressed) return;
    }
  }

  /** Runs one unit of work on PGlite; false when there is nothing to do now. */
  async #step(): Promise<boolean> {
    const db = this.#db;
    if (!db) return false;
    const owner = this.#owner;
    if (owner?.stage === 'closed') {
      await this.#cleanUp(db, owner);
      return true;
    }
    if (owner && !this.#stopped) {
      if (owner.inExtended || db.isInTransaction()) {
        const message = owner.pending.shift();
        if (!message) return false;
        await this.#run(db, owner, message);
        return true;
      }
      // The turn ends at an idle boundary; a session with more to send queues behind those that waited longer.
      if (owner.pending.length > 0) owner.waitingSince = Date.now();
    }
    this.#owner = null;
    const closed = this.#closed.shift();
    if (closed) {
      await this.#cleanUp(db, closed);
      return true;
    }
    if (this.#stopped) return false;
    let next: Session | null = null;
    for (const session of this.#sessions) {
      if (session.pending.length > 0 && (!next || session.waitingSince < next.waitingSince)) {
        next = session;
      }
    }
    if (!next) return false;
    this.#owner = next;
    await this.#load(db, next);
    // Empty when the session closed meanwhile; the next step then clears up after it.
    const message = next.pending.shift();
    if (message) await this.#run(db, next, message);
    return true;
  }

  /** Gives PGlite the session's settings, saving those of the session that had it before. */
  async #load(db: PGlite, session: Session): Promise<void> {
    if (this.#loaded === session) return;
    const previous = this.#loaded;
    try {
      if (previous && previous.stage !== 'closed') {
        previous.settings = await this.#captureSettings(db);
      }
      if (this.#dirty || session.settings.length > 0) {
        await db.exec('RESET SESSION AUTHORIZATION; RESET ALL');
        await this.#restoreSettings(db, session.settings);
      }
    } catch (error) {
      // Best effort: an SQL error here costs one session its settings, not everyone their connection.
      // A PGlite that really failed throws again on the next message, which triggers recovery.
      this.#onEvent(`demo database: could not switch session settings (${describe(error)})`);
    }
    this.#loaded = session;
    this.#dirty = true;
  }

  async #captureSettings(db: PGlite): Promise<Array<[string, string]>> {
    const result = await db.query<{ name: string; value: string }>(CAPTURE_SETTINGS_SQL, [
      JSON.stringify([...this.#customSettingNames]),
      'postgres',
    ]);
    return result.rows.map((row) => [row.name, row.value]);
  }

  async #restoreSettings(db: PGlite, settings: Array<[string, string]>): Promise<void> {
    if (settings.length === 0) return;
    try {
      await db.query(RESTORE_SETTINGS_SQL, [JSON.stringify(settings)]);
    } catch {
      // One bad value (a role dropped meanwhile, say) must not cost the others.
      for (const setting of settings) {
        await db.query(RESTORE_SETTINGS_SQL, [JSON.stringify([setting])]).catch(() => undefined);
      }
    }
  }

  async #run(db: PGlite, session: Session, message: Buffer): Promise<void> {
    session.touched = true;
    this.#running = true;
    session.lastActivity = Date.now();
    const type = message[0] as number;
    if (EXTENDED_TYPES.has(type)) session.inExtended = true;
    else if (type === code('S')) session.inExtended = false;
    const rewritten = this.#rewrite(session, message);
    const socket = session.socket;
    try {
      await db.runExclusive(() =>
        db.execProtocolRawStream(rewritten, {
          onRawData: (data) => {
            if (!socket.destroyed && socket.writable) socket.write(Buffer.from(data));
          },
        }),
      );
    } finally {
      this.#running = false;
      session.lastActivity = Date.now();
    }
  }

  /** Adapts a client message before PGlite sees it: per-session statement names, learned settings, no COPY IN. */
  #rewrite(session: Session, message: Buffer): Uint8Array {
    const type = String.fromCharCode(message[0] as number);
    const body = message.subarray(5);
    switch (type) {
      case 'Q': {
        const [sql] = readCString(body, 0);
        this.#learnSettingNames(sql);
        return COPY_FROM_STDIN.test(sql)
          ? frontendMessage('Q', cstring(COPY_FROM_STDIN_REPLACEMENT))
          : message;
      }
      case 'P': {
        const [name, afterName] = readCString(body, 0);
        const [sql, afterSql] = readCString(body, afterName);
        this.#learnSettingNames(sql);
        const statement = this.#statementName(session, name);
        if (name !== '') session.statements.add(statement);
        const text = COPY_FROM_STDIN.test(sql) ? COPY_FROM_STDIN_REPLACEMENT : sql;
        if (name === '' && text === sql) return message;
        return frontendMessage('P', cstring(statement), cstring(text), body.subarray(afterSql));
      }
      case 'B': {
        const [portal, afterPortal] = readCString(body, 0);
        const [name, afterName] = readCString(body, afterPortal);
        if (name === '') return message;
        return frontendMessage(
          'B',
          cstring(portal),
          cstring(this.#statementName(session, name)),
          body.subarray(afterName),
        );
      }
      case 'D':
      case 'C': {
        const [name] = readCString(body, 1);
        if (body[0] !== code('S') || name === '') return message;
        const statement = this.#statementName(session, name);
        if (type === 'C') session.statements.delete(statement);
        return frontendMessage(type, body.subarray(0, 1), cstring(statement));
      }
      default:
        return message;
    }
  }

  #statementName(session: Session, name: string): string {
    return name === '' ? '' : `pc${session.id}.${name}`;
  }

  #learnSettingNames(sql: string): void {
    for (const match of sql.matchAll(SET_CUSTOM))
      this.#learnSettingName((match[1] ?? '').replaceAll('"', ''));
    for (const match of sql.matchAll(SET_CONFIG_CUSTOM)) this.#learnSettingName(match[1] ?? '');
  }

  #learnSettingName(raw: string): void {
    const name = raw.toLowerCase();
    if (
      CUSTOM_SETTING_NAME.test(name) &&
      this.#customSettingNames.size < MAX_CUSTOM_SETTING_NAMES
    ) {
      this.#customSettingNames.add(name);
    }
  }

  /** Clears what a departed session left in PGlite, so the next session finds it idle and tidy. */
  async #cleanUp(db: PGlite, session: Session): Promise<void> {
    const messages: Uint8Array[] = [];
    // A Sync ends an unfinished extended-query sequence, including one skipping messages after an error.
    if (session.inExtended && this.#owner === session) messages.push(frontendMessage('S'));
    for (const statement of session.statements) {
      messages.push(
        frontendMessage('C', Buffer.from('S'), cstring(statement)),
        frontendMessage('S'),
      );
    }
    for (const message of messages) {
      await db.runExclusive(() => db.execProtocolRawStream(message, { onRawData: () => {} }));
    }
    if (this.#owner === session) {
      if (db.isInTransaction()) {
        await db.exec('ROLLBACK').catch((error: unknown) => {
          this.#onEvent(`demo database: rollback after disconnect failed (${describe(error)})`);
        });
      }
      this.#owner = null;
    }
    session.statements.clear();
    const index = this.#closed.indexOf(session);
    if (index >= 0) this.#closed.splice(index, 1);
    if (this.#loaded === session) this.#loaded = null;
  }

  /** PGlite threw (it exited or broke); drop every session and reopen a fresh instance when possible. */
  async #recover(error: unknown): Promise<void> {
    const reason = describe(error);
    this.#db = null;
    this.#owner = null;
    this.#loaded = null;
    this.#dirty = false;
    this.#closed.length = 0;
    for (const session of [...this.#sessions]) {
      this.#terminate(
        session,
        '57P02',
        `the embedded demo database stopped unexpectedly (${reason}); reconnect`,
      );
    }
    this.#closed.length = 0;
    if (this.#stopped) return;
    this.#onEvent(`demo database failed: ${reason}`);
    if (!this.#reopen) {
      this.#unavailable = `the embedded demo database is unavailable after a failure (${reason})`;
      return;
    }
    try {
      this.#db = await this.#reopen();
      this.#onEvent('demo database reopened');
    } catch (reopenError) {
      const message = describe(reopenError);
      this.#unavailable = `the embedded demo database could not be reopened (${message})`;
      this.#onEvent(`demo database could not be reopened: ${message}`);
    }
  }

  /** Explains a wait to the sessions kept waiting, and ends a transaction left idle while others wait. */
  #checkWaiters(): void {
    const owner = this.#owner;
    if (!owner || owner.stage === 'closed') return;
    const now = Date.now();
    let firstWaitStart = Number.POSITIVE_INFINITY;
    for (const session of this.#sessions) {
      if (session === owner || session.pending.length === 0) continue;
      firstWaitStart = Math.min(firstWaitStart, session.waitingSince);
      if (!session.noticeSent && now - session.waitingSince >= this.#waitNoticeAfterMs) {
        session.noticeSent = true;
        session.socket.write(
          noticeResponse(
            `waiting for demo session ${owner.id} to finish its transaction: the embedded demo database runs one ` +
              `transaction at a time, and disconnects a session idle in a transaction for ` +
              `${Math.round(this.#idleInTransactionTimeoutMs / 1000)} s while others wait`,
          ),
        );
      }
    }
    if (firstWaitStart === Number.POSITIVE_INFINITY || owner.pending.length > 0 || this.#running)
      return;
    const idleSince = Math.max(owner.lastActivity, firstWaitStart);
    if (now - idleSince >= this.#idleInTransactionTimeoutMs) {
      this.#onEvent(
        `demo session ${owner.id} disconnected: idle in a transaction while other sessions waited`,
      );
      this.#terminate(
        owner,
        '25P03',
        'terminating connection due to idle-in-transaction timeout: another session was waiting, and the ' +
          'embedded demo database runs one transaction at a time',
      );
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Learns the ParameterStatus values of a fresh session by running one startup through PGlite. */
async function readDefaultParameters(db: PGlite): Promise<Map<string, string>> {
  const packetBody = Buffer.concat([
    int32(196608),
    cstring('user'),
    cstring('postgres'),
    cstring('database'),
    cstring('postgres'),
    Buffer.from([0]),
  ]);
  const reply = Buffer.from(
    await db.execProtocolRaw(Buffer.concat([int32(packetBody.length + 4), packetBody])),
  );
  const parameters = new Map<string, string>();
  for (let offset = 0; offset + 5 <= reply.length;) {
    const length = reply.readInt32BE(offset + 1);
    if (reply[offset] === code('S')) {
      const [name, afterName] = readCString(reply, offset + 5);
      const [value] = readCString(reply, afterName);
      parameters.set(name, value);
    }
    offset += length + 1;
  }
  return parameters;
}

function parseStartupParameters(body: Buffer): Map<string, string> {
  const parameters = new Map<string, string>();
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const [name, afterName] = readCString(body, offset);
    const [value, afterValue] = readCString(body, afterName);
    parameters.set(name, value);
    offset = afterValue;
  }
  return parameters;
}

/** Settings a client asked for at startup (plain parameters and `options` -c switches), as PostgreSQL would apply them. */
function startupSettings(parameters: Map<string, string>): Array<[string, string]> {
  const settings: Array<[string, string]> = [];
  for (const [name, value] of parameters) {
    if (!NON_SETTING_PARAMETERS.has(name) && !name.startsWith('_pq_.'))
      settings.push([name, value]);
  }
  const words = splitOptions(parameters.get('options') ?? '');
  for (let i = 0; i < words.length; i++) {
    const word = words[i] ?? '';
    const assignment =
      word === '-c'
        ? words[++i]
        : word.startsWith('--')
          ? word.slice(2)
          : word.startsWith('-c')
            ? word.slice(2)
            : undefined;
    const equals = assignment?.indexOf('=') ?? -1;
    if (assignment && equals > 0) {
      const name = assignment.slice(0, equals).replaceAll('-', '_');
      if (name !== 'client_encoding') settings.push([name, assignment.slice(equals + 1)]);
    }
  }
  return settings;
}

/** Splits the `options` startup parameter on whitespace, honouring backslash escapes as libpq writes them. */
function splitOptions(options: string): string[] {
  const words: string[] = [];
  let current = '';
  let escaped = false;
  for (const char of options) {
    if (escaped) {
      current += char;
      escaped = false;
    } else if (char === '\\') {
      escaped = true;
    } else if (/\s/.test(char)) {
      if (current) words.push(current);
      current = '';
    } else {
      current += char;
    }
  }
  if (current) words.push(current);
  return words;
}

function readCString(buffer: Buffer, offset: number): [string, number] {
  const end = buffer.indexOf(0, offset);
  const stop = end === -1 ? buffer.length : end;
  return [buffer.toString('utf8', offset, stop), stop + 1];
}

function cstring(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function int32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeInt32BE(value);
  return buffer;
}

function frontendMessage(type: string, ...parts: Buffer[]): Buffer {
  return backendMessage(type, Buffer.concat(parts));
}

function backendMessage(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return backendMessage('Z', Buffer.from(status));
}

function negotiateProtocolVersion(minor: number, unsupportedOptions: string[]): Buffer {
  return backendMessage(
    'v',
    Buffer.concat([
      int32(minor),
      int32(unsupportedOptions.length),
      ...unsupportedOptions.map(cstring),
    ]),
  );
}

function noticeOrError(
  type: 'E' | 'N',
  severity: string,
  sqlState: string,
  message: string,
): Buffer {
  const fields = Buffer.concat([
    Buffer.from('S'),
    cstring(severity),
    Buffer.from('V'),
    cstring(severity),
    Buffer.from('C'),
    cstring(sqlState),
    Buffer.from('M'),
    cstring(message),
    Buffer.from([0]),
  ]);
  return backendMessage(type, fields);
}

function errorResponse(severity: 'ERROR' | 'FATAL', sqlState: string, message: string): Buffer {
  return noticeOrError('E', severity, sqlState, message);
}

function noticeResponse(message: string): Buffer {
  return noticeOrError('N', 'NOTICE', '00000', message);
}
