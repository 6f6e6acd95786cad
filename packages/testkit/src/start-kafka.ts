import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { ensureKafkaJars, type EnsureKafkaJarsOptions } from './ensure-kafka-jars.js';
import { freePort } from './free-port.js';
import { generateTlsCertificates } from './generate-tls-certificates.js';
import { runProgram } from './run-program.js';
import { ServiceProcess } from './service-process.js';
import { dyingWithParent } from './service-user.js';
import { registerService } from './stop-all-services.js';

export {
  ensureKafkaJars,
  KAFKA_VERSION,
  type EnsureKafkaJarsOptions,
  type KafkaJars,
} from './ensure-kafka-jars.js';

/** Options for {@link startKafka}. */
export interface StartKafkaOptions extends EnsureKafkaJarsOptions {
  /** Partitions of topics created automatically or without a count (`num.partitions`); 1 by default. */
  partitions?: number;
  /** More `server.properties` settings, written after (so overriding) the testkit's own. */
  properties?: Record<string, string>;
  /** Java heap limit (`-Xmx`); `256m` by default. */
  heap?: string;
  /**
   * Also listen with TLS (`sslBrokers`), with a certificate for 127.0.0.1 from a throw-away CA
   * (`tlsCa`). Off by default: generating the certificates takes a moment.
   */
  tls?: boolean;
}

/** SASL/PLAIN credentials the broker accepts on its SASL listener. */
export interface KafkaSaslPlain {
  mechanism: 'plain';
  username: string;
  password: string;
}

/** SCRAM credentials the broker accepts on its SASL listener (stored with `--add-scram`). */
export interface KafkaSaslScram {
  mechanism: 'scram-sha-256' | 'scram-sha-512';
  username: string;
  password: string;
}

/** A running (or killed) throw-away single-node Kafka started by {@link startKafka}. */
export interface KafkaServer {
  /** `host:port` of the PLAINTEXT listener, for kafkajs `brokers`. */
  brokers: string[];
  /**
   * `host:port` of the SASL_PLAINTEXT listener: mechanism PLAIN with the user in {@link sasl},
   * SCRAM-SHA-256 and SCRAM-SHA-512 with the users in {@link scramSha256} and {@link scramSha512}.
   */
  saslBrokers: string[];
  /** `host:port` of the SSL listener when started with `tls: true`; empty otherwise. */
  sslBrokers: string[];
  /** PEM of the CA that signed the SSL listener's certificate (`tls: true`); null otherwise. */
  tlsCa: string | null;
  /** The PLAIN user of the SASL listener. */
  sasl: KafkaSaslPlain;
  /** A SCRAM-SHA-256 user of the SASL listener. */
  scramSha256: KafkaSaslScram;
  /** A SCRAM-SHA-512 user of the SASL listener. */
  scramSha512: KafkaSaslScram;
  /** Kafka's version. */
  version: string;
  /** The broker's pid (changes with each restart). */
  readonly pid: number;
  /** The directory with `server.properties`, the log dir (`data/`) and the broker's log file. */
  dir: string;
  /** The broker's stdout and stderr. */
  logFile: string;
  /** Stops the broker (SIGTERM, a controlled shutdown) and removes every file. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs the broker, keeping its data, to simulate a crash; resolves once it is gone. */
  kill(): Promise<void>;
  /**
   * Starts the broker again on the same ports and log dir: after kill(), or stopping it first
   * (SIGTERM) while it runs. Resolves once it answers metadata requests.
   */
  restart(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 60_000;
const BIND_FAILURE = /Address already in use|BindException/;

/**
 * JVM flags for a fast start of a small broker: a small serial-GC heap, the C1 compiler only
 * (most of the start is class loading and interpretation; C2 does not pay off in a test), no
 * perf-data file.
 */
function jvmFlags(heap: string): string[] {
  return [
    `-Xmx${heap}`,
    '-Xms32m',
    '-Xss512k',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    '-XX:-UsePerfData',
    '-XX:+ExitOnOutOfMemoryError',
    '-Djava.awt.headless=true',
  ];
}

function properties(init: {
  dataDir: string;
  brokerPort: number;
  saslPort: number;
  controllerPort: number;
  /** The SSL listener's port and its PEM key store (key and certificate chain). */
  ssl: { port: number; keyStoreFile: string } | null;
  partitions: number;
  sasl: KafkaSaslPlain;
  extra: Record<string, string>;
}): string {
  const { brokerPort, saslPort, controllerPort, ssl } = init;
  const sslListener = ssl === null ? '' : `,SSL://${HOST}:${ssl.port}`;
  const jaasValue = (s: string): string => `"${s.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
  const settings: Record<string, string> = {
    'process.roles': 'broker,controller',
    'node.id': '1',
    'controller.quorum.voters': `1@${HOST}:${controllerPort}`,
    listeners: `PLAINTEXT://${HOST}:${brokerPort},SASL_PLAINTEXT://${HOST}:${saslPort},CONTROLLER://${HOST}:${controllerPort}${sslListener}`,
    'advertised.listeners': `PLAINTEXT://${HOST}:${brokerPort},SASL_PLAINTEXT://${HOST}:${saslPort}${sslListener}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map':
      'PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL',
    ...(ssl === null
      ? {}
      : { 'ssl.keystore.type': 'PEM', 'ssl.keystore.location': ssl.keyStoreFile }),
    'sasl.enabled.mechanisms': 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
    'listener.name.sasl_plaintext.plain.sasl.jaas.config':
      'org.apache.kafka.common.security.plain.PlainLoginModule required ' +
      `user_${init.sasl.username}=${jaasValue(init.sasl.password)};`,
    // SCRAM users live in the cluster metadata (written by `format --add-scram`), not here.
    'listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config':
      'org.apache.kafka.common.security.scram.ScramLoginModule required;',
    'log.dirs': init.dataDir,
    'num.partitions': String(init.partitions),
    'default.replication.factor': '1',
    'offsets.topic.replication.factor': '1',
    'offsets.topic.num.partitions': '4',
    'transaction.state.log.replication.factor': '1',
    'transaction.state.log.min.isr': '1',
    'transaction.state.log.num.partitions': '4',
    'share.coordinator.state.topic.replication.factor': '1',
    'share.coordinator.state.topic.min.isr': '1',
    'group.initial.rebalance.delay.ms': '0',
    // Small files and few threads: a test broker holds little data and starts often.
    'log.segment.bytes': String(8 * 1024 * 1024),
    'log.index.size.max.bytes': String(64 * 1024),
    'num.network.threads': '2',
    'num.io.threads': '2',
    'num.recovery.threads.per.data.dir': '1',
    'background.threads': '2',
    'num.replica.fetchers': '1',
    'auto.create.topics.enable': 'true',
    // After a crash the controller keeps the dead incarnation's registration until its session
    // times out (9 s by default) before it lets the restarted broker in; keep that short.
    'broker.session.timeout.ms': '1500',
    'broker.heartbeat.interval.ms': '300',
    ...init.extra,
  };
  return `# Written by the Portcullis testkit\n${Object.entries(settings)
    .map(([key, value]) => `${key}=${value}`)
    .join('\n')}\n`;
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

class KafkaBroker implements KafkaServer {
  readonly brokers: string[];
  readonly saslBrokers: string[];
  readonly sasl: KafkaSaslPlain;
  readonly scramSha256: KafkaSaslScram;
  readonly scramSha512: KafkaSaslScram;
  readonly sslBrokers: string[];
  readonly tlsCa: string | null;
  readonly version: string;
  readonly dir: string;
  readonly logFile: string;
  readonly #javaArgs: string[];
  readonly #classArchive: string;
  #dumpingArchive: string | undefined;
  #process: ServiceProcess | undefined;
  #removed = false;
  readonly #unregister: () => void;

  constructor(init: {
    dir: string;
    version: string;
    brokerPort: number;
    saslPort: number;
    sasl: KafkaSaslPlain;
    scram: { username: string; password: string };
    ssl: { port: number; ca: string } | null;
    javaArgs: string[];
    classArchive: string;
  }) {
    this.dir = init.dir;
    this.version = init.version;
    this.logFile = join(init.dir, 'kafka.log');
    this.brokers = [`${HOST}:${init.brokerPort}`];
    this.saslBrokers = [`${HOST}:${init.saslPort}`];
    this.sasl = init.sasl;
    this.scramSha256 = { mechanism: 'scram-sha-256', ...init.scram };
    this.scramSha512 = { mechanism: 'scram-sha-512', ...init.scram };
    this.sslBrokers = init.ssl === null ? [] : [`${HOST}:${init.ssl.port}`];
    this.tlsCa = init.ssl?.ca ?? null;
    this.#javaArgs = init.javaArgs;
    this.#classArchive = init.classArchive;
    this.#unregister = registerService({
      stop: () => this.stop(),
      stopSync: () => this.#stopSync(),
    });
  }

  get pid(): number {
    return this.#process?.pid ?? -1;
  }

  async start(): Promise<void> {
    if (this.#removed) throw new Error('this Kafka broker was stopped and its files removed');
    if (this.#process?.running) return;
    const { cmd, args } = dyingWithParent('java', [...this.#classDataSharing(), ...this.#javaArgs]);
    const started = await ServiceProcess.start(cmd, args, {
      logFile: this.logFile,
      env: process.env,
    });
    this.#process = started;
    await this.#waitReady(started);
  }

  async kill(): Promise<void> {
    await this.#process?.stop('SIGKILL');
  }

  /** Kills the broker and forgets it without removing the directory (a start on taken ports). */
  async abandon(): Promise<void> {
    this.#removed = true;
    this.#unregister();
    await this.#process?.stop('SIGKILL');
  }

  async restart(): Promise<void> {
    await this.#process?.stop('SIGTERM');
    await this.#keepArchive();
    await this.start();
  }

  async stop(): Promise<void> {
    if (this.#removed) return;
    this.#removed = true;
    this.#unregister();
    try {
      await this.#process?.stop('SIGTERM', 20_000);
      await this.#keepArchive();
    } finally {
      await rm(this.dir, { recursive: true, force: true });
    }
  }

  async #waitReady(server: ServiceProcess): Promise<void> {
    const kafka = new Kafka({
      clientId: 'portcullis-testkit',
      brokers: this.brokers,
      logLevel: logLevel.NOTHING,
      connectionTimeout: 1_000,
      retry: { retries: 0 },
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!server.running) {
        const exit = server.exit;
        throw new Error(
          `Kafka on ${this.brokers[0]} exited during startup ` +
            `(code ${exit?.code ?? '-'}, signal ${exit?.signal ?? '-'}):\n${server.logTail()}`,
        );
      }
      const admin = kafka.admin();
      try {
        await admin.connect();
        const cluster = await admin.describeCluster();
        if (cluster.brokers.length > 0) return;
      } catch (error) {
        lastError = error;
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
      await sleep(100);
    }
    await server.stop('SIGKILL');
    const reason = lastError instanceof Error ? lastError.message : String(lastError);
    throw new Error(
      `Kafka on ${this.brokers[0]} did not answer within ${READY_TIMEOUT_MS} ms (${reason}):\n${server.logTail()}`,
    );
  }

  /**
   * Class-data sharing: the JVM maps the classes of an earlier broker run from an archive instead
   * of loading and verifying them, which halves the start (~5.5 s → ~2.8 s here). Without an
   * archive this run writes one when it exits cleanly (stop() or restart()), for the next start.
   */
  #classDataSharing(): string[] {
    if (existsSync(this.#classArchive)) return [`-XX:SharedArchiveFile=${this.#classArchive}`];
    this.#dumpingArchive = `${this.#classArchive}.${process.pid}-${Date.now()}`;
    return [`-XX:ArchiveClassesAtExit=${this.#dumpingArchive}`];
  }

  async #keepArchive(): Promise<void> {
    const dumped = this.#dumpingArchive;
    this.#dumpingArchive = undefined;
    if (dumped !== undefined && existsSync(dumped)) {
      await rename(dumped, this.#classArchive).catch(() => rm(dumped, { force: true }));
    }
  }

  #stopSync(): void {
    this.#removed = true;
    this.#process?.stopSync('SIGTERM', 5_000);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Starts a throw-away single-node Kafka (KRaft, broker and controller in one JVM) for tests: the
 * jars come from {@link ensureKafkaJars} (fetched from Maven Central once), the log dir is
 * formatted with `kafka.tools.StorageTool` in a temporary directory (`$TMPDIR/portcullis-kafka-*`),
 * and the broker listens on free loopback ports: PLAINTEXT (`brokers`), SASL_PLAINTEXT with
 * mechanisms PLAIN (user in `sasl`) and SCRAM-SHA-256/512 (users in `scramSha256`, `scramSha512`)
 * (`saslBrokers`), the controller's, and with `tls: true` SSL (`sslBrokers`, CA in `tlsCa`). Resolves once the broker
 * answers a kafkajs `describeCluster`. Needs Java 17 or newer on the PATH.
 *
 * Tuned to start fast (~4 s here): serial GC, C1 only, small heap, small segments and few
 * threads. The broker is stopped when this process exits, and killed by the kernel if this
 * process dies.
 */
export async function startKafka(options: StartKafkaOptions = {}): Promise<KafkaServer> {
  const jars = await ensureKafkaJars(options);
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-kafka-'));
  let broker: KafkaBroker | undefined;
  try {
    const dataDir = join(dir, 'data');
    const propertiesFile = join(dir, 'server.properties');
    const sasl: KafkaSaslPlain = {
      mechanism: 'plain',
      username: 'portcullis',
      password: randomBytes(12).toString('base64url'),
    };
    // Hex: no character the `--add-scram` syntax treats specially.
    const scram = { username: 'portcullis-scram', password: randomBytes(12).toString('hex') };
    let tls: { ca: string; keyStoreFile: string } | null = null;
    if (options.tls === true) {
      const certificates = await generateTlsCertificates({ dir });
      // A PEM key store is the private key followed by the certificate chain.
      const keyStoreFile = join(dir, 'server-keystore.pem');
      await writeFile(keyStoreFile, `${certificates.key}\n${certificates.cert}\n`, { mode: 0o600 });
      tls = { ca: certificates.caCert, keyStoreFile };
    }
    const jvm = [
      ...jvmFlags(options.heap ?? '256m'),
      `-Dlog4j2.configurationFile=${jars.log4jConfig}`,
      '-cp',
      jars.classpath,
    ];
    for (let attempt = 1; ; attempt++) {
      const [brokerPort, saslPort, controllerPort] = [
        await freePort(HOST),
        await freePort(HOST),
        await freePort(HOST),
      ] as [number, number, number];
      const sslPort = tls === null ? 0 : await freePort(HOST);
      await writeFile(
        propertiesFile,
        properties({
          dataDir,
          brokerPort,
          saslPort,
          controllerPort,
          ssl: tls === null ? null : { port: sslPort, keyStoreFile: tls.keyStoreFile },
          partitions: options.partitions ?? 1,
          sasl,
          extra: options.properties ?? {},
        }),
        { mode: 0o600 },
      );
      await rm(dataDir, { recursive: true, force: true });
      const clusterId = randomBytes(16).toString('base64url');
      const format = dyingWithParent('java', [
        ...jvm,
        'kafka.tools.StorageTool',
        'format',
        // One argument: a random id may start with '-', which would read as an option.
        `--cluster-id=${clusterId}`,
        '--config',
        propertiesFile,
        ...['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((mechanism) => [
          '--add-scram',
          `${mechanism}=[name=${scram.username},password=${scram.password}]`,
        ]),
      ]);
      await runProgram(format.cmd, format.args, { timeoutMs: 120_000 });
      broker = new KafkaBroker({
        dir,
        version: jars.version,
        brokerPort,
        saslPort,
        sasl,
        scram,
        ssl: tls === null ? null : { port: sslPort, ca: tls.ca },
        javaArgs: [...jvm, 'kafka.Kafka', propertiesFile],
        classArchive: join(jars.dir, '..', 'broker-classes.jsa'),
      });
      try {
        await broker.start();
        return broker;
      } catch (error) {
        // Another process may have taken a port between freePort() and the bind: try new ones.
        const bindFailed = error instanceof Error && BIND_FAILURE.test(error.message);
        if (!bindFailed || attempt >= 3) throw error;
        await broker.abandon();
        broker = undefined;
      }
    }
  } catch (error) {
    if (broker) await broker.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
