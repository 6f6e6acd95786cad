import { rmSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePgBouncerInstalled } from './ensure-pg-bouncer-installed.js';
import { freePort } from './free-port.js';
import { ServiceProcess } from './service-process.js';
import { asServiceUser, giveToServiceUser, serviceEnv } from './service-user.js';
import type { PostgresCredentials, PostgresServer } from './start-postgres.js';
import { registerService } from './stop-all-services.js';

/** A running PgBouncer started by {@link startPgBouncer}. */
export interface PgBouncerServer {
  host: '127.0.0.1';
  port: number;
  /** PgBouncer's log file. */
  logFile: string;
  /** Process id of PgBouncer itself (for RSS and CPU measurements). */
  readonly pid: number;
  /** A `postgresql://` URL for logging in through PgBouncer. */
  url(database: string, user: string, password: string): string;
  /** Immediate shutdown (SIGTERM) and removal of its files. Idempotent. */
  stop(): Promise<void>;
}

/** Options for {@link startPgBouncer}. */
export interface StartPgBouncerOptions {
  /** The PostgreSQL server every database (`*`) maps to; only its host and port are used. */
  upstream: Pick<PostgresServer, 'host' | 'port'>;
  /** Users allowed to log in, with the passwords PgBouncer also uses to log in upstream. */
  users: PostgresCredentials[];
  /** `pool_mode`; `session` by default. */
  poolMode?: 'session' | 'transaction';
  /** `max_client_conn`; 1000 by default. */
  maxClientConn?: number;
  /** `default_pool_size`; 20 by default. */
  defaultPoolSize?: number;
  /** `auth_type` clients must use; `md5` by default. */
  authType?: 'md5' | 'scram-sha-256' | 'plain';
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 30_000;
const BIND_FAILURE = /Address already in use|bind\(\) failed|could not bind|listen\(\) failed/i;

function quoted(text: string): string {
  return `"${text.replaceAll('"', '""')}"`;
}

async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Starts PgBouncer (installed from Debian packages when missing) as a child process on a free
 * port of 127.0.0.1, in front of `upstream` (`* = host=... port=...`), with its configuration,
 * userlist (`auth_file` with the users' clear-text passwords) and log in a temporary directory.
 * Runs as the `postgres` account when this process is root. Resolves once it accepts TCP
 * connections. It is stopped when this process exits, and killed by the kernel if this process
 * dies.
 */
export async function startPgBouncer(opts: StartPgBouncerOptions): Promise<PgBouncerServer> {
  const { bin } = await ensurePgBouncerInstalled();
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-pgbouncer-'));
  try {
    const iniFile = join(dir, 'pgbouncer.ini');
    const authFile = join(dir, 'userlist.txt');
    const logFile = join(dir, 'pgbouncer.log');
    await writeFile(
      authFile,
      opts.users.map((u) => `${quoted(u.user)} ${quoted(u.password)}\n`).join(''),
      { mode: 0o600 },
    );
    giveToServiceUser(dir, authFile);
    const writeIni = async (port: number): Promise<void> => {
      const settings: Record<string, string | number> = {
        listen_addr: HOST,
        listen_port: port,
        unix_socket_dir: '',
        auth_type: opts.authType ?? 'md5',
        auth_file: authFile,
        pool_mode: opts.poolMode ?? 'session',
        max_client_conn: opts.maxClientConn ?? 1000,
        default_pool_size: opts.defaultPoolSize ?? 20,
        ignore_startup_parameters: 'extra_float_digits,options',
        // Retry an upstream that went away after a second, not the default 15.
        server_login_retry: 1,
        logfile: '',
        pidfile: '',
      };
      await writeFile(
        iniFile,
        `[databases]\n* = host=${opts.upstream.host} port=${opts.upstream.port}\n\n[pgbouncer]\n` +
          Object.entries(settings)
            .map(([key, value]) => `${key} = ${value}\n`)
            .join(''),
        { mode: 0o600 },
      );
      giveToServiceUser(iniFile);
    };

    for (let attempt = 1; ; attempt++) {
      const port = await freePort(HOST);
      await writeIni(port);
      const { cmd, args } = asServiceUser(bin, [iniFile], { dieWithParent: true });
      const child = await ServiceProcess.start(cmd, args, { logFile, env: serviceEnv() });
      const deadline = Date.now() + READY_TIMEOUT_MS;
      let ready = false;
      while (child.running && Date.now() < deadline) {
        if (await accepts(port)) {
          ready = true;
          break;
        }
        await sleep(20);
      }
      if (ready && child.running) return new PgBouncer(dir, port, logFile, child);
      await child.stop('SIGKILL');
      const log = child.logTail();
      if (BIND_FAILURE.test(log) && attempt < 5) continue;
      throw new Error(
        `PgBouncer on port ${port} ${ready ? 'exited' : 'did not accept connections'} ` +
          `(code ${child.exit?.code ?? '-'}, signal ${child.exit?.signal ?? '-'}):\n${log}`,
      );
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

class PgBouncer implements PgBouncerServer {
  readonly host = HOST;
  #stopped = false;
  readonly #unregister: () => void;

  constructor(
    readonly dir: string,
    readonly port: number,
    readonly logFile: string,
    readonly child: ServiceProcess,
  ) {
    this.#unregister = registerService({
      stop: () => this.stop(),
      stopSync: () => {
        this.#stopped = true;
        this.child.stopSync('SIGKILL');
        rmSync(this.dir, { recursive: true, force: true });
      },
    });
  }

  get pid(): number {
    return this.child.pid;
  }

  url(database: string, user: string, password: string): string {
    const u = encodeURIComponent(user);
    const p = encodeURIComponent(password);
    return `postgresql://${u}:${p}@${HOST}:${this.port}/${encodeURIComponent(database)}`;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#unregister();
    try {
      await this.child.stop('SIGTERM', 10_000);
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }
}
