import { join } from 'node:path';
import { silentLogger, type Logger } from '@portcullis/core';
import {
  ChdbEventStore,
  ClickHouseSink,
  KafkaSink,
  BULK_BATCHES,
  CLICKHOUSE_BATCHES,
  STREAM_BATCHES,
  SinkRunner,
  Spool,
  SpoolEventSink,
  type BatchSink,
  type KafkaSinkOptions,
  type SinkRunnerOptions,
} from '@portcullis/events';
import type { EventsConfig } from '../config/load-config.js';
import { loadChainKey } from './chain-key.js';
import type { ClusterSinkClient } from './cluster-event-sinks.js';
import { encodeEventJson } from './encode-event-json.js';
import { SpoolAdmission } from './event-admission.js';
import { JsonlFileSink } from './jsonl-file-sink.js';
import { StoreSink, storeOf } from './store-sink.js';

/** The sinks' consumer names in the spool. */
export const FILE_SINK = 'file';
export const STORE_SINK = 'store';
export const KAFKA_SINK = 'kafka';
export const CLICKHOUSE_SINK = 'clickhouse';

/** Options of {@link EventPipeline.open}. */
export interface EventPipelineOptions {
  /** This process's slot; its spool is `<spool.dir>/<slot>`. */
  readonly slot: number;
  readonly logger?: Logger;
  /**
   * Deliver to the primary's sinks instead of running them here (a cluster worker); absent:
   * run the configured sinks in this process.
   */
  readonly remote?: ClusterSinkClient;
  /** On close, how long to wait for the sinks to catch up before stopping them (default 5 s). */
  readonly drainTimeoutMs?: number;
}

/** One sink's figures, for metrics. */
export interface SinkSnapshot {
  readonly name: string;
  readonly lagRecords: number;
  readonly lagBytes: number;
  readonly delivered: number;
  readonly failures: number;
}

/** The pipeline's figures, for metrics. */
export interface EventPipelineSnapshot {
  readonly spoolBytes: number;
  readonly spoolMaxBytes: number;
  readonly accepting: boolean;
  readonly dropped: number;
  readonly lost: number;
  readonly corrupted: number;
  readonly sinks: readonly SinkSnapshot[];
}

/**
 * The configured sinks, built for this process: the JSONL file and the embedded store. Used by
 * a single-process gateway and by the primary of a multi-process one.
 */
export async function createLocalSinks(
  config: EventsConfig,
  logger: Logger = silentLogger,
): Promise<BatchSink[]> {
  const sinks: BatchSink[] = [];
  if (config.file !== null) {
    sinks.push(
      new JsonlFileSink({
        name: FILE_SINK,
        path: config.file.path,
        maxBytes: config.file.maxBytes,
        keep: config.file.keep,
      }),
    );
  }
  if (config.store !== null) {
    const store = new ChdbEventStore({
      dataDir: config.store.dir,
      chainKey: await loadChainKey(config.store),
      retentionDays: config.store.retentionDays,
    });
    sinks.push(new StoreSink(store, { name: STORE_SINK, logger }));
  }
  const kafka = config.kafka;
  if (kafka !== null) {
    sinks.push(
      new KafkaSink({
        name: KAFKA_SINK,
        brokers: [...kafka.brokers],
        topic: kafka.topic,
        format: kafka.format,
        compression: kafka.compression,
        gzipLevel: kafka.gzipLevel,
        ssl: kafka.ssl,
        ...(kafka.sasl === null
          ? {}
          : {
              sasl: {
                mechanism: kafka.sasl.mechanism,
                username: kafka.sasl.username,
                password: kafka.sasl.password,
              } as KafkaSinkOptions['sasl'] & object,
            }),
        logger,
      }),
    );
  }
  const ch = config.clickhouse;
  if (ch !== null) {
    sinks.push(
      new ClickHouseSink({
        name: CLICKHOUSE_SINK,
        url: ch.url,
        table: ch.table,
        schema: ch.schema,
        retentionDays: ch.retentionDays,
        deadLetterDir: ch.deadLetterDir,
        ...(ch.username === null ? {} : { username: ch.username }),
        ...(ch.password === null ? {} : { password: ch.password }),
        ...(ch.database === null ? {} : { database: ch.database }),
        logger,
      }),
    );
  }
  return sinks;
}

/** Names of the sinks `config` turns on. */
export function sinkNames(config: EventsConfig): string[] {
  return [
    ...(config.file === null ? [] : [FILE_SINK]),
    ...(config.store === null ? [] : [STORE_SINK]),
    ...(config.kafka === null ? [] : [KAFKA_SINK]),
    ...(config.clickhouse === null ? [] : [CLICKHOUSE_SINK]),
  ];
}

/**
 * Everything between a gateway process's sessions and the event sinks: the spool under
 * `<spool.dir>/<slot>`, the admission-checking event sink the sessions write to
 * ({@link sink}), and one SinkRunner per configured sink draining the spool, each
 * acknowledging only what its sink stored.
 *
 * A consumer whose sink was turned off in the configuration is removed from the spool on open,
 * so it no longer holds segments on disk.
 */
export class EventPipeline {
  /** Where sessions write their events. */
  readonly sink: SpoolAdmission;
  readonly spool: Spool;
  /**
   * The embedded store the store sink writes to, when it runs in this process; readers share it
   * (chDB allows one process per store, and the store serialises queries with inserts).
   */
  readonly store: ChdbEventStore | null;
  readonly #runners: SinkRunner[];
  readonly #names: string[];
  readonly #maxBytes: number;
  readonly #logger: Logger;
  readonly #drainTimeoutMs: number;
  #closing: Promise<void> | null = null;

  private constructor(
    spool: Spool,
    sink: SpoolAdmission,
    runners: { name: string; runner: SinkRunner }[],
    maxBytes: number,
    logger: Logger,
    drainTimeoutMs: number,
    store: ChdbEventStore | null,
  ) {
    this.spool = spool;
    this.sink = sink;
    this.store = store;
    this.#runners = runners.map((r) => r.runner);
    this.#names = runners.map((r) => r.name);
    this.#maxBytes = maxBytes;
    this.#logger = logger;
    this.#drainTimeoutMs = drainTimeoutMs;
  }

  /** Opens the spool (recovering what a crash left), then starts the sinks' runners. */
  static async open(config: EventsConfig, options: EventPipelineOptions): Promise<EventPipeline> {
    const logger = options.logger ?? silentLogger;
    const spool = await Spool.open({
      dir: join(config.spool.dir, String(options.slot)),
      maxBytes: config.spool.maxBytes,
      whenFull: config.spool.whenFull,
      batchDelayMs: config.flushIntervalMs,
      logger,
    });
    const runners: { name: string; runner: SinkRunner }[] = [];
    let store: ChdbEventStore | null;
    try {
      const names = sinkNames(config);
      for (const name of spool.consumers().keys()) {
        if (!names.includes(name)) {
          logger.info({ sink: name }, 'event sink turned off; its spool consumer is removed');
          await spool.removeConsumer(name);
        }
      }
      const sinks =
        options.remote === undefined
          ? await createLocalSinks(config, logger)
          : names.map((name) => options.remote!.sink(name));
      store = storeOf(sinks);
      for (const sink of sinks) {
        const runner = new SinkRunner(spool, sink, { logger, ...batchesFor(sink.name) });
        await runner.start();
        runners.push({ name: sink.name, runner });
      }
    } catch (err) {
      for (const { runner } of runners) await runner.stop().catch(() => undefined);
      await spool.close().catch(() => undefined);
      throw err;
    }
    const inner = new SpoolEventSink(spool, { encode: encodeEventJson, closeSpool: false });
    const sink = new SpoolAdmission(spool, inner, {
      maxBytes: config.spool.maxBytes,
      whenFull: config.spool.whenFull,
      logger,
    });
    return new EventPipeline(
      spool,
      sink,
      runners,
      config.spool.maxBytes,
      logger,
      options.drainTimeoutMs ?? 5_000,
      store,
    );
  }

  /** The runners, for metrics and tests. */
  get runners(): readonly SinkRunner[] {
    return this.#runners;
  }

  /** Resolves once every sink has acknowledged everything appended so far, or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    await this.spool.flush();
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      if (this.#runners.every((r) => r.stats.lagRecords === 0)) return true;
      if (performance.now() >= deadline) return false;
      await new Promise((resolveWait) => setTimeout(resolveWait, 10));
    }
  }

  /** Figures for the metrics. */
  snapshot(): EventPipelineSnapshot {
    const spool = this.spool;
    return {
      spoolBytes: spool.diskBytes + spool.bufferedBytes,
      spoolMaxBytes: this.#maxBytes,
      accepting: this.sink.accepting,
      dropped: spool.droppedEvents,
      lost: this.sink.lost,
      corrupted: spool.corruptedRecords,
      sinks: this.#runners.map((runner, i) => {
        const stats = runner.stats;
        const name = this.#names[i]!;
        const lag = spool.lag(name);
        return {
          name,
          lagRecords: lag.records,
          lagBytes: lag.bytes,
          delivered: stats.delivered,
          failures: stats.failures,
        };
      }),
    };
  }

  /**
   * Stops taking events, makes the spooled ones durable, gives the sinks up to the drain timeout
   * to catch up, then stops them and closes the spool. What they did not take stays in the
   * spool for the next start.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        const drained = await this.drain(this.#drainTimeoutMs);
        if (!drained) {
          this.#logger.warn(
            { lag: this.#runners.map((r) => r.stats.lagRecords) },
            'event sinks did not catch up before shutdown; the rest is delivered after the next start',
          );
        }
      } catch (err) {
        this.#logger.error({ err }, 'the event spool could not be flushed at shutdown');
      }
      for (const runner of this.#runners) {
        await runner
          .stop()
          .catch((err: unknown) =>
            this.#logger.warn({ err }, 'an event sink did not stop cleanly'),
          );
      }
      await this.spool.close();
    })();
    return this.#closing;
  }
}

/** How each sink reads the spool; see the constants' comments. */
function batchesFor(sink: string): SinkRunnerOptions {
  // Stores pay a fixed cost per insert (a new data part): hand them large batches.
  if (sink === STORE_SINK) return BULK_BATCHES;
  if (sink === CLICKHOUSE_SINK) return CLICKHOUSE_BATCHES;
  if (sink === KAFKA_SINK) return STREAM_BATCHES;
  return {};
}
