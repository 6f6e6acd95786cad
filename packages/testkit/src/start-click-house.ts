import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebianPackages } from './ensure-debian-packages.js';
import { freePort } from './free-port.js';
import { ServiceProcess } from './service-process.js';
import { dyingWithParent, serviceEnv } from './service-user.js';
import { registerService } from './stop-all-services.js';

/** Options for {@link startClickHouse}. */
export interface StartClickHouseOptions {
  /** HTTP port on 127.0.0.1; a free one by default. */
  httpPort?: number;
  /** Native-protocol TCP port on 127.0.0.1 (for `clickhouse-client`); a free one by default. */
  tcpPort?: number;
  /** Server log level (`<logger><level>`); `warning` by default. */
  logLevel?: 'error' | 'warning' | 'information' | 'debug' | 'trace';
}

/** A running (or killed) throw-away ClickHouse server started by {@link startClickHouse}. */
export interface ClickHouseServer {
  host: '127.0.0.1';
  /** `http://127.0.0.1:<httpPort>`, user `default` without a password. */
  url: string;
  httpPort: number;
  tcpPort: number;
  /** What `SELECT version()` answered, e.g. `18.16.1`. */
  version: string;
  /** The process id of the running server; changes on restart(). */
  pid: number;
  /** The server's data directory (inside a temporary directory that stop() removes). */
  dataDir: string;
  /** The file the server's console output goes to. */
  logFile: string;
  /**
   * Runs one statement over HTTP and returns the response body (use `FORMAT JSONEachRow` etc.
   * in `sql` for structured output). Rejects with the server's message on a non-200 answer.
   */
  query(sql: string): Promise<string>;
  /** SIGKILLs the server, keeping its data, to simulate a crash; resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts the server again on the same ports and data after kill() or a clean stop of the process. */
  start(): Promise<void>;
  /** Stops the server (SIGTERM), then start(). */
  restart(): Promise<void>;
  /** Stops the server and removes every file. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const SERVER_BIN = '/usr/sbin/clickhouse-server';
const CLIENT_BIN = '/usr/bin/clickhouse-client';
const READY_TIMEOUT_MS = 60_000;
const BIND_FAILURE =
  /Address already in use|Cannot assign requested address|Net Exception: .*bind/i;

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

function xmlText(value: string): string {
  return value.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** The users file: one `default` user without a password, loopback only. */
const USERS_XML = `<?xml version="1.0"?>
<!-- Written by the Portcullis testkit. -->
<yandex>
  <profiles>
    <default>
      <max_memory_usage>4000000000</max_memory_usage>
      <load_balancing>random</load_balancing>
    </default>
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
</yandex>
`;

function configXml(opts: {
  baseDir: string;
  httpPort: number;
  tcpPort: number;
  logLevel: string;
}): string {
  const dir = (name: string): string => xmlText(`${join(opts.baseDir, name)}/`);
  return `<?xml version="1.0"?>
<!-- Written by the Portcullis testkit. -->
<yandex>
  <logger>
    <level>${opts.logLevel}</level>
    <console>1</console>
  </logger>
  <listen_host>${HOST}</listen_host>
  <http_port>${opts.httpPort}</http_port>
  <tcp_port>${opts.tcpPort}</tcp_port>
  <path>${dir('data')}</path>
  <tmp_path>${dir('tmp')}</tmp_path>
  <user_files_path>${dir('user_files')}</user_files_path>
  <format_schema_path>${dir('format_schemas')}</format_schema_path>
  <users_config>${xmlText(join(opts.baseDir, 'users.xml'))}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
</yandex>
`;
}

class ClickHouse implements ClickHouseServer {
  readonly host = HOST;
  httpPort: number;
  tcpPort: number;
  version = '';
  readonly dataDir: string;
  readonly logFile: string;
  readonly #baseDir: string;
  readonly #configFile: string;
  readonly #logLevel: string;
  #process: ServiceProcess | undefined;
  #removed = false;
  readonly #unregister: () => void;

  constructor(init: { baseDir: string; httpPort: number; tcpPort: number; logLevel: string }) {
    this.#baseDir = init.baseDir;
    this.httpPort = init.httpPort;
    this.tcpPort = init.tcpPort;
    this.#logLevel = init.logLevel;
    this.dataDir = join(init.baseDir, 'data');
    this.logFile = join(init.baseDir, 'clickhouse-server.log');
    this.#configFile = join(init.baseDir, 'config.xml');
    this.#unregister = registerService({
      stop: () => this.stop(),
      stopSync: () => this.#stopSync(),
    });
  }

  get url(): string {
    return `http://${HOST}:${this.httpPort}`;
  }

  get pid(): number {
    return this.#process?.pid ?? -1;
  }

  async writeConfig(): Promise<void> {
    await writeFile(
      this.#configFile,
      configXml({
        baseDir: this.#baseDir,
        httpPort: this.httpPort,
        tcpPort: this.tcpPort,
        logLevel: this.#logLevel,
      }),
    );
  }

  async query(sql: string): Promise<string> {
    const response = await fetch(`${this.url}/`, {
      method: 'POST',
      body: sql,
      signal: AbortSignal.timeout(30_000),
    });
    const text = await response.text();
    if (response.status !== 200) {
      throw new Error(`ClickHouse answered ${response.status}: ${text.trim()}`);
    }
    return text;
  }

  async start(): Promise<void> {
    this.#assertNotRemoved();
    if (this.#process?.running) return;
    // The server runs as this process's user (it does not refuse root). setpriv's parent-death
    // signal takes it down with this process, even when this process is SIGKILLed.
    const { cmd, args } = dyingWithParent(SERVER_BIN, [`--config-file=${this.#configFile}`]);
    const started = await ServiceProcess.start(cmd, args, {
      logFile: this.logFile,
      env: serviceEnv(),
    });
    this.#process = started;
    await this.#waitReady(started);
  }

  async kill(): Promise<void> {
    await this.#process?.stop('SIGKILL');
  }

  async restart(): Promise<void> {
    this.#assertNotRemoved();
    await this.#process?.stop('SIGTERM');
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    this.#unregister();
    try {
      await this.#process?.stop('SIGTERM');
    } finally {
      await rm(this.#baseDir, { recursive: true, force: true });
    }
  }

  /** First start: on a port clash (another process took a free port), tries other ports. */
  async firstStart(fixedPorts: boolean): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.start();
        this.version = (await this.query('SELECT version()')).trim();
        return;
      } catch (error) {
        const bindFailed = error instanceof Error && BIND_FAILURE.test(error.message);
        if (fixedPorts || !bindFailed || attempt >= 5) throw error;
        this.httpPort = await freePort(HOST);
        this.tcpPort = await freePort(HOST);
        await this.writeConfig();
      }
    }
  }

  #assertNotRemoved(): void {
    if (this.#removed) throw new Error('this ClickHouse server was stopped and its files removed');
  }

  async #waitReady(server: ServiceProcess): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!server.running) {
        const exit = server.exit;
        throw new Error(
          `ClickHouse on port ${this.httpPort} exited during startup ` +
            `(code ${exit?.code ?? '-'}, signal ${exit?.signal ?? '-'}):\n${server.logTail()}`,
        );
      }
      try {
        if ((await this.query('SELECT 1')).trim() === '1') return;
      } catch (error) {
        lastError = error;
      }
      await sleep(50);
    }
    await server.stop('SIGKILL');
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new Error(
      `ClickHouse on port ${this.httpPort} did not answer SELECT 1 within ${READY_TIMEOUT_MS} ms ` +
        `(${reason}):\n${server.logTail()}`,
    );
  }

  #stopSync(): void {
    this.#removed = true;
    this.#process?.stopSync('SIGTERM');
    rmSync(this.#baseDir, { recursive: true, force: true });
  }
}

/**
 * Starts a throw-away ClickHouse server for tests: Debian's `clickhouse-server` (installed with
 * `clickhouse-client` when missing; Debian 12 ships 18.16) with its own config and users file in
 * a temporary directory (`$TMPDIR/portcullis-clickhouse-*`), listening on 127.0.0.1 at free HTTP
 * and native TCP ports. The user `default` has no password. Resolves once `SELECT 1` answers
 * over HTTP (about 2 s).
 *
 * The server runs as this process's user: unlike PostgreSQL it does not refuse root. It is
 * stopped when this process exits, and killed by the kernel if this process dies.
 */
export async function startClickHouse(
  opts: StartClickHouseOptions = {},
): Promise<ClickHouseServer> {
  await ensureDebianPackages({
    packages: ['clickhouse-server', 'clickhouse-client'],
    probe: [SERVER_BIN, CLIENT_BIN],
  });
  const baseDir = await mkdtemp(join(tmpdir(), 'portcullis-clickhouse-'));
  let server: ClickHouse | undefined;
  try {
    for (const dir of ['data', 'tmp', 'user_files', 'format_schemas']) {
      await mkdir(join(baseDir, dir));
    }
    await writeFile(join(baseDir, 'users.xml'), USERS_XML);
    server = new ClickHouse({
      baseDir,
      httpPort: opts.httpPort ?? (await freePort(HOST)),
      tcpPort: opts.tcpPort ?? (await freePort(HOST)),
      logLevel: opts.logLevel ?? 'warning',
    });
    await server.writeConfig();
    await server.firstStart(opts.httpPort !== undefined || opts.tcpPort !== undefined);
    return server;
  } catch (error) {
    if (server) await server.stop().catch(() => undefined);
    await rm(baseDir, { recursive: true, force: true });
    throw error;
  }
}
