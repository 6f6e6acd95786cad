import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { ensurePostgresInstalled } from './ensure-postgres-installed.js';
import { freePort } from './free-port.js';
import { generateTlsCertificates } from './generate-tls-certificates.js';
import { runProgram } from './run-program.js';
import { ServiceProcess } from './service-process.js';
import { asServiceUser, giveToServiceUser, serviceEnv } from './service-user.js';
import { quoteIdent, quoteLiteral } from './sql-quote.js';
import { registerService } from './stop-all-services.js';

/** A role name and its password. */
export interface PostgresCredentials {
  user: string;
  password: string;
}

/**
 * Login roles created at start, one per upstream password authentication method; pg_hba.conf
 * makes TCP logins of each use that method.
 */
export interface PostgresRoles {
  /** Authenticates with `scram-sha-256` (password stored as a SCRAM secret). */
  scram: PostgresCredentials;
  /** Authenticates with `md5` (password stored as an MD5 hash). */
  md5: PostgresCredentials;
  /** Authenticates with `password`: the password travels in clear text. */
  cleartext: PostgresCredentials;
}

/** Options for {@link startPostgres}. */
export interface StartPostgresOptions {
  /** `max_connections`; 200 by default. */
  maxConnections?: number;
  /** More `postgresql.conf` settings, written after (so overriding) the testkit's own. */
  settings?: Record<string, string>;
  /** TCP port on 127.0.0.1; a free one by default. */
  port?: number;
}

/** A running (or killed) throw-away PostgreSQL server started by {@link startPostgres}. */
export interface PostgresServer {
  host: '127.0.0.1';
  port: number;
  /** The cluster's data directory (inside a temporary directory that stop() removes). */
  dataDir: string;
  /** Directory of the server's Unix socket; local logins there are `trust`ed. */
  socketDir: string;
  /** The server's log file. */
  logFile: string;
  superuser: { user: 'postgres'; password: string };
  /** Roles created at start, each with a password, to exercise every upstream auth method. */
  roles: PostgresRoles;
  /** PEM of the self-signed CA that signed the server certificate (server runs with ssl=on). */
  tlsCa: string;
  /** A `postgresql://` URL for TCP on 127.0.0.1; database `postgres` and the superuser by default. */
  url(database?: string, role?: PostgresCredentials): string;
  /** Creates a database; the three roles get ALL on it and on its schema `public`. */
  createDatabase(name: string): Promise<void>;
  /** Runs SQL as the superuser (over the Unix socket) in `database` (default `postgres`). */
  query(sql: string, database?: string): Promise<pg.QueryResult>;
  /** Fast shutdown (like `pg_ctl stop -m fast`) and removal of every file. Idempotent. */
  stop(): Promise<void>;
  /** Immediate shutdown (like `pg_ctl stop -m immediate`), keeping the data, to simulate the upstream dying. */
  kill(): Promise<void>;
  /** Starts the server again (same port and data) after kill(); resolves once it accepts logins. */
  start(): Promise<void>;
  /** Fast shutdown, then start(). */
  restart(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 60_000;
const BIND_FAILURE = /could not bind|Address already in use|could not create any TCP\/IP sockets/;

function secret(): string {
  return randomBytes(18).toString('base64url');
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Quotes a postgresql.conf value (where a backslash escapes too). */
function confValue(value: string): string {
  return `'${value.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`;
}

class Postgres implements PostgresServer {
  readonly host = HOST;
  port: number;
  readonly superuser: { user: 'postgres'; password: string };
  readonly roles: PostgresRoles;
  readonly tlsCa: string;
  readonly dataDir: string;
  readonly socketDir: string;
  readonly logFile: string;
  readonly #baseDir: string;
  readonly #binDir: string;
  #process: ServiceProcess | undefined;
  #removed = false;
  #unregister: () => void;

  constructor(init: {
    baseDir: string;
    binDir: string;
    port: number;
    superPassword: string;
    roles: PostgresRoles;
    tlsCa: string;
  }) {
    this.#baseDir = init.baseDir;
    this.#binDir = init.binDir;
    this.port = init.port;
    this.dataDir = join(init.baseDir, 'data');
    this.socketDir = join(init.baseDir, 'sock');
    this.logFile = join(init.baseDir, 'postgres.log');
    this.superuser = { user: 'postgres', password: init.superPassword };
    this.roles = init.roles;
    this.tlsCa = init.tlsCa;
    this.#unregister = registerService({
      stop: () => this.stop(),
      stopSync: () => this.#stopSync(),
    });
  }

  url(database = 'postgres', role: PostgresCredentials = this.superuser): string {
    const user = encodeURIComponent(role.user);
    const password = encodeURIComponent(role.password);
    return `postgresql://${user}:${password}@${HOST}:${this.port}/${encodeURIComponent(database)}`;
  }

  async query(sql: string, database = 'postgres'): Promise<pg.QueryResult> {
    const client = new pg.Client({
      host: this.socketDir,
      port: this.port,
      user: this.superuser.user,
      database,
    });
    // A server killed mid-query makes the client emit 'error'; the query's rejection reports it.
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await client.query(sql);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async createDatabase(name: string): Promise<void> {
    const roles = this.#roleList();
    await this.query(`CREATE DATABASE ${quoteIdent(name)}`);
    await this.query(`GRANT ALL ON DATABASE ${quoteIdent(name)} TO ${roles}`);
    await this.query(`GRANT ALL ON SCHEMA public TO ${roles}`, name);
  }

  async start(): Promise<void> {
    this.#assertNotRemoved();
    if (this.#process?.running) return;
    const { cmd, args } = asServiceUser(
      join(this.#binDir, 'postgres'),
      ['-D', this.dataDir, '-p', String(this.port)],
      { dieWithParent: true },
    );
    const started = await ServiceProcess.start(cmd, args, {
      logFile: this.logFile,
      env: serviceEnv(),
    });
    this.#process = started;
    await this.#waitReady(started);
  }

  async kill(): Promise<void> {
    await this.#process?.stop('SIGQUIT');
  }

  async restart(): Promise<void> {
    this.#assertNotRemoved();
    await this.#process?.stop('SIGINT');
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    this.#unregister();
    try {
      await this.#process?.stop('SIGINT');
    } finally {
      await rm(this.#baseDir, { recursive: true, force: true });
    }
  }

  /** Creates the three login roles and lets them create tables in existing and new databases. */
  async createRoles(): Promise<void> {
    const { scram, md5, cleartext } = this.roles;
    const role = (c: PostgresCredentials): string =>
      `CREATE ROLE ${quoteIdent(c.user)} LOGIN PASSWORD ${quoteLiteral(c.password)};`;
    await this.query(
      [
        `SET password_encryption = 'md5';`,
        role(md5),
        `SET password_encryption = 'scram-sha-256';`,
        role(scram),
        role(cleartext),
        `GRANT ALL ON DATABASE postgres TO ${this.#roleList()};`,
        `GRANT ALL ON SCHEMA public TO ${this.#roleList()};`,
      ].join('\n'),
    );
    // Databases are copied from template1, so this reaches databases created later too.
    await this.query(`GRANT ALL ON SCHEMA public TO ${this.#roleList()}`, 'template1');
  }

  /** First start: on a port clash (another process took the free port), tries another port. */
  async firstStart(fixedPort: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        return;
      } catch (error) {
        const bindFailed = error instanceof Error && BIND_FAILURE.test(error.message);
        if (fixedPort || !bindFailed || attempt >= 5) throw error;
        this.port = await freePort(HOST);
      }
    }
  }

  #roleList(): string {
    return Object.values(this.roles)
      .map((c: PostgresCredentials) => quoteIdent(c.user))
      .join(', ');
  }

  #assertNotRemoved(): void {
    if (this.#removed) throw new Error('this PostgreSQL server was stopped and its files removed');
  }

  async #waitReady(server: ServiceProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!server.running) {
        const exit = server.exit;
        throw new Error(
          `PostgreSQL on port ${this.port} exited during startup ` +
            `(code ${exit?.code ?? '-'}, signal ${exit?.signal ?? '-'}):\n${server.logTail()}`,
        );
      }
      try {
        await this.query('SELECT 1');
        return;
      } catch (error) {
        lastError = error;
        await sleep(25);
      }
    }
    await server.stop('SIGQUIT');
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new Error(
      `PostgreSQL on port ${this.port} did not accept logins within ${READY_TIMEOUT_MS} ms ` +
        `(${reason}):\n${server.logTail()}`,
    );
  }

  #stopSync(): void {
    this.#removed = true;
    this.#process?.stopSync('SIGQUIT');
    rmSync(this.#baseDir, { recursive: true, force: true });
  }
}

/**
 * Starts a throw-away PostgreSQL server for tests: a fresh cluster (initdb) in a temporary
 * directory (`$TMPDIR/portcullis-pg-*`), listening on 127.0.0.1 at a free port with `ssl=on`,
 * run as the `postgres` account when this process is root. `fsync` and `full_page_writes` are off
 * for speed: committed data survives kill() (a server crash), not an operating-system crash.
 *
 * TCP logins: role {@link PostgresRoles.md5} uses `md5`, {@link PostgresRoles.cleartext} uses
 * `password`, everyone else (the superuser, {@link PostgresRoles.scram}) `scram-sha-256`. Unix
 * socket logins are trusted.
 *
 * Installs PostgreSQL (Debian packages) when missing. The server is stopped when this process
 * exits, and killed by the kernel if this process dies.
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const { binDir } = await ensurePostgresInstalled();
  const baseDir = await mkdtemp(join(tmpdir(), 'portcullis-pg-'));
  let server: Postgres | undefined;
  try {
    const dataDir = join(baseDir, 'data');
    const socketDir = join(baseDir, 'sock');
    const pwFile = join(baseDir, 'superuser-password');
    const superPassword = secret();
    await mkdir(socketDir);
    await writeFile(pwFile, `${superPassword}\n`, { mode: 0o600 });
    giveToServiceUser(baseDir, socketDir, pwFile);
    const initdb = asServiceUser(join(binDir, 'initdb'), [
      '-D',
      dataDir,
      '-U',
      'postgres',
      `--pwfile=${pwFile}`,
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C',
      '--no-sync',
    ]);
    await runProgram(initdb.cmd, initdb.args, { env: serviceEnv(), timeoutMs: 120_000 });
    await rm(pwFile);

    const tls = await generateTlsCertificates({ dir: dataDir });
    giveToServiceUser(
      ...['ca.crt', 'ca.key', 'server.crt', 'server.key', 'server.ext'].map((f) =>
        join(dataDir, f),
      ),
    );

    const roles: PostgresRoles = {
      scram: { user: 'portcullis_scram', password: secret() },
      md5: { user: 'portcullis_md5', password: secret() },
      cleartext: { user: 'portcullis_cleartext', password: secret() },
    };
    const settings: Record<string, string> = {
      listen_addresses: HOST,
      unix_socket_directories: socketDir,
      max_connections: String(opts.maxConnections ?? 200),
      ssl: 'on',
      ssl_cert_file: 'server.crt',
      ssl_key_file: 'server.key',
      password_encryption: 'scram-sha-256',
      // No fsync: an OS crash could lose data, a server crash (kill()) cannot. synchronous_commit
      // stays on: off would make kill() lose the last commits (up to wal_writer_delay), and with
      // fsync off a commit only costs a write() to the page cache anyway.
      fsync: 'off',
      full_page_writes: 'off',
      log_line_prefix: '%m [%p] %q%u@%d ',
      ...opts.settings,
    };
    await appendFile(
      join(dataDir, 'postgresql.conf'),
      `\n# Portcullis testkit\n${Object.entries(settings)
        .map(([key, value]) => `${key} = ${confValue(value)}`)
        .join('\n')}\n`,
    );
    const hba = (user: string, method: string): string =>
      `host    all  ${user.padEnd(22)} 127.0.0.1/32  ${method}\n`;
    await writeFile(
      join(dataDir, 'pg_hba.conf'),
      '# TYPE  DATABASE  USER  ADDRESS  METHOD  (written by the Portcullis testkit)\n' +
        'local   all  all                    trust\n' +
        hba(quoteIdent(roles.md5.user), 'md5') +
        hba(quoteIdent(roles.cleartext.user), 'password') +
        hba('all', 'scram-sha-256'),
    );

    server = new Postgres({
      baseDir,
      binDir,
      port: opts.port ?? (await freePort(HOST)),
      superPassword,
      roles,
      tlsCa: tls.caCert,
    });
    await server.firstStart(opts.port !== undefined);
    await server.createRoles();
    return server;
  } catch (error) {
    if (server) await server.stop().catch(() => undefined);
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}
