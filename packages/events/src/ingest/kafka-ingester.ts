import type { ConnectionOptions } from 'node:tls';
import { silentLogger, type Logger } from '@portcullis/core';
import {
  Kafka,
  logLevel,
  type Consumer,
  type EachBatchPayload,
  type LogEntry,
  type SASLOptions,
} from 'kafkajs';
import type { DeadLetterEntry, DeadLetterFile } from '../sinks/dead-letter-file.js';
import type { SpoolRecord } from '../spool/spool-reader.js';
import { assembleIngestChunks, nextOffset, type IngestChunk } from './ingest-batch.js';

/** Where the ingester stores events; a {@link ClickHouseSink} is one. The caller closes it. */
export interface IngestSink {
  readonly name: string;
  /** Named in dead-letter entries as the target. */
  readonly table: string;
  /** Where messages that are not events go (as the sink's own refused rows do). */
  readonly deadLetters: DeadLetterFile;
  /** Stores the records; idempotent by event id, so a re-delivered message is kept once. */
  deliver(records: readonly SpoolRecord[]): Promise<void>;
}

/** Options of {@link KafkaIngester}. */
export interface KafkaIngesterOptions {
  /** `host:port` of one or more brokers to bootstrap from. */
  readonly brokers: readonly string[];
  /** The events topic the gateway's Kafka sink writes. */
  readonly topic: string;
  /** The consumer group; ingesters sharing it split the topic's partitions between them. */
  readonly groupId: string;
  readonly sink: IngestSink;
  /** Most events in one insert (default 10,000). */
  readonly batchRows?: number;
  /**
   * Longest wait for a partition's batch to fill (default 1,000 ms): the broker answers a fetch
   * when it holds `minBytes` or this time has passed, so under light traffic a batch holds what
   * arrived in this time, under heavy traffic up to {@link batchRows} events.
   */
  readonly batchMs?: number;
  /** Bytes the broker waits for before answering a fetch early (default 1 MiB). */
  readonly minBytes?: number;
  /** Most bytes fetched from one partition at a time (default 8 MiB). */
  readonly maxBytesPerPartition?: number;
  /** Partitions processed at the same time by this ingester (default 4). */
  readonly partitionsConsumedConcurrently?: number;
  /** The group session timeout (default 30,000 ms): how soon a crashed member's partitions move. */
  readonly sessionTimeoutMs?: number;
  /** A new group starts at the topic's earliest offset (default true) or its end. */
  readonly fromBeginning?: boolean;
  /** Longest pause between two tries of a failed insert (default 10,000 ms). */
  readonly maxRetryDelayMs?: number;
  /** kafkajs `clientId` (default `portcullis-ingest`). */
  readonly clientId?: string;
  /** TLS: `true` for the system CAs, or Node TLS options, passed through. */
  readonly ssl?: boolean | ConnectionOptions;
  /** SASL options passed through to kafkajs. */
  readonly sasl?: SASLOptions;
  readonly logger?: Logger;
}

/** What a {@link KafkaIngester} has done since it started, for progress lines and metrics. */
export interface KafkaIngesterStats {
  /** Messages read (including skipped and dead-lettered ones) whose offsets were committed. */
  readonly committedMessages: number;
  /** Events handed to the sink in inserts that succeeded. */
  readonly stored: number;
  /** OCSF messages skipped (the table holds the native form of the same events). */
  readonly skippedOcsf: number;
  /** Messages that were not events, written to the sink's dead-letter file. */
  readonly deadLettered: number;
  /** Inserts that failed and were tried again. */
  readonly failedInserts: number;
  /** Offset commits made. */
  readonly commits: number;
  /** Messages behind the end of the assigned partitions, as of each one's last batch. */
  readonly lag: number;
  /** Partitions assigned to this ingester now. */
  readonly partitions: number;
}

const WAIT_STEP_MS = 250;

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Reads session events from the Kafka topic the gateway's Kafka sink writes, as a member of a
 * consumer group, and stores them through an {@link IngestSink} (a ClickHouse sink) in batches.
 *
 * - **Commits follow inserts.** kafkajs runs with `autoCommit: false` and
 *   `eachBatchAutoResolve: false`; a partition's offset is committed only after the insert of the
 *   messages before it succeeded. A crash between the two re-delivers those messages to whoever
 *   owns the partition next, and the sink's deduplication by event id keeps one row per event.
 * - **Batches** are a partition's fetch, cut into inserts of at most `batchRows` events; the
 *   fetch is bounded in time by `batchMs` (the broker's fetch wait) and in bytes.
 * - **What is stored:** native events only. OCSF messages (`format: ocsf` header) are counted and
 *   skipped; a message that is not an event (no value, not JSON, missing fields, an unknown format)
 *   goes to the sink's dead-letter file with the reason and its offset as `sequence`, then its
 *   offset is committed like the others: nothing is dropped silently, nothing blocks the partition.
 * - **Failures:** a failed insert is tried again with backoff (heartbeating, so the group keeps
 *   the partition) until it succeeds or the ingester stops; nothing is committed meanwhile.
 * - **Scaling:** start more ingesters with the same group; Kafka splits the partitions.
 * - **Stopping:** {@link stop} finishes the insert in flight, commits it and leaves the group.
 */
export class KafkaIngester {
  readonly #options: KafkaIngesterOptions;
  readonly #sink: IngestSink;
  readonly #logger: Logger;
  readonly #batchRows: number;
  readonly #maxRetryDelayMs: number;
  readonly #consumer: Consumer;
  readonly #lag = new Map<number, number>();
  #partitions = 0;
  #started = false;
  #stopped = false;
  #committedMessages = 0;
  #stored = 0;
  #skippedOcsf = 0;
  #deadLettered = 0;
  #failedInserts = 0;
  #commits = 0;
  #crash: ((error: Error) => void) | null = null;
  readonly #crashed: Promise<never>;

  constructor(options: KafkaIngesterOptions) {
    if (options.brokers.length === 0) throw new RangeError('KafkaIngester needs a broker');
    if (options.topic === '') throw new RangeError('KafkaIngester needs a topic');
    if (options.groupId === '') throw new RangeError('KafkaIngester needs a consumer group');
    this.#options = options;
    this.#sink = options.sink;
    this.#logger = options.logger ?? silentLogger;
    this.#batchRows = options.batchRows ?? 10_000;
    if (!Number.isSafeInteger(this.#batchRows) || this.#batchRows < 1) {
      throw new RangeError('batchRows must be a whole number of at least 1');
    }
    const batchMs = options.batchMs ?? 1_000;
    if (!Number.isSafeInteger(batchMs) || batchMs < 1) {
      throw new RangeError('batchMs must be a whole number of milliseconds, at least 1');
    }
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 10_000;
    const sessionTimeout = options.sessionTimeoutMs ?? 30_000;
    const logger = this.#logger;
    const kafka = new Kafka({
      clientId: options.clientId ?? 'portcullis-ingest',
      brokers: [...options.brokers],
      ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
      ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ level, log }: LogEntry) => {
          const { message, timestamp: _t, logger: _l, ...fields } = log;
          const entry = { kafka: fields };
          if (level <= logLevel.ERROR) logger.error(entry, `kafkajs: ${message}`);
          else if (level <= logLevel.WARN) logger.warn(entry, `kafkajs: ${message}`);
          else logger.debug(entry, `kafkajs: ${message}`);
        },
    });
    this.#consumer = kafka.consumer({
      groupId: options.groupId,
      sessionTimeout,
      heartbeatInterval: Math.max(100, Math.floor(sessionTimeout / 10)),
      maxWaitTimeInMs: batchMs,
      minBytes: options.minBytes ?? 1024 * 1024,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 8 * 1024 * 1024,
      maxBytes: 64 * 1024 * 1024,
      allowAutoTopicCreation: false,
    });
    this.#crashed = new Promise<never>((_resolve, reject) => {
      this.#crash = reject;
    });
    // Observed only through done(); keep an unobserved crash from being an unhandled rejection.
    this.#crashed.catch(() => {});
    const { GROUP_JOIN, CRASH } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, ({ payload }) => {
      const assigned = payload.memberAssignment[options.topic] ?? [];
      this.#partitions = assigned.length;
      for (const partition of [...this.#lag.keys()]) {
        if (!assigned.includes(partition)) this.#lag.delete(partition);
      }
      this.#logger.info(
        { topic: options.topic, group: options.groupId, partitions: assigned },
        'joined the consumer group',
      );
    });
    this.#consumer.on(CRASH, ({ payload }) => {
      if (payload.restart) {
        this.#logger.warn({ err: payload.error }, 'Kafka consumer failed; restarting it');
        return;
      }
      this.#logger.error({ err: payload.error }, 'Kafka consumer failed for good');
      this.#crash?.(payload.error);
    });
  }

  /** Counters since the start. */
  get stats(): KafkaIngesterStats {
    let lag = 0;
    for (const value of this.#lag.values()) lag += value;
    return {
      committedMessages: this.#committedMessages,
      stored: this.#stored,
      skippedOcsf: this.#skippedOcsf,
      deadLettered: this.#deadLettered,
      failedInserts: this.#failedInserts,
      commits: this.#commits,
      lag,
      partitions: this.#partitions,
    };
  }

  /** Connects, joins the group and starts consuming; resolves once the consumer runs. */
  async start(): Promise<void> {
    if (this.#started) throw new Error('KafkaIngester was started already');
    this.#started = true;
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topic: this.#options.topic,
      fromBeginning: this.#options.fromBeginning ?? true,
    });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.#options.partitionsConsumedConcurrently ?? 4,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
  }

  /** Rejects when the consumer fails for good (kafkajs gave up restarting it); never resolves. */
  failed(): Promise<never> {
    return this.#crashed;
  }

  /**
   * Stops: the insert in flight finishes and is committed, later ones are not started, the
   * consumer leaves the group (its partitions move to the other members) and disconnects.
   * Idempotent. Does not close the sink.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await this.#consumer.disconnect();
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale } =
      payload;
    const chunks = assembleIngestChunks(batch.messages, this.#batchRows);
    const high = BigInt(batch.highWatermark);
    for (const chunk of chunks) {
      if (this.#stopped || !isRunning() || isStale()) return;
      if (!(await this.#store(chunk, batch.partition, heartbeat, isRunning, isStale))) return;
      const next = nextOffset(chunk.lastOffset);
      resolveOffset(chunk.lastOffset);
      // Straight to the group coordinator: unlike consumer.commitOffsets this also commits while
      // the consumer is stopping, so the insert that finished during stop() is not redone.
      await commitOffsetsIfNecessary({
        topics: [
          { topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] },
        ],
      });
      this.#commits++;
      this.#committedMessages += chunk.records.length + chunk.invalid.length + chunk.ocsf;
      this.#stored += chunk.records.length;
      this.#skippedOcsf += chunk.ocsf;
      this.#deadLettered += chunk.invalid.length;
      const lag = high - BigInt(next);
      this.#lag.set(batch.partition, lag > 0n ? Number(lag) : 0);
      await heartbeat();
    }
  }

  /** Writes a chunk, trying again until it is stored; false when the ingester stops first. */
  async #store(
    chunk: IngestChunk,
    partition: number,
    heartbeat: () => Promise<void>,
    isRunning: () => boolean,
    isStale: () => boolean,
  ): Promise<boolean> {
    let deadLettered = chunk.invalid.length === 0;
    let delay = 100;
    for (;;) {
      try {
        if (!deadLettered) {
          await this.#sink.deadLetters.append(this.#deadLetters(chunk, partition));
          deadLettered = true;
          this.#logger.warn(
            { topic: this.#options.topic, partition, messages: chunk.invalid.length },
            'messages that are not events went to the dead-letter file',
          );
        }
        if (chunk.records.length > 0) await this.#sink.deliver(chunk.records);
        return true;
      } catch (error) {
        this.#failedInserts++;
        this.#logger.warn(
          { err: error, partition, records: chunk.records.length, retryInMs: delay },
          'storing events failed; trying again',
        );
      }
      // Wait in small steps, heartbeating, so a stop or a rebalance does not wait for the delay.
      for (let waited = 0; waited < delay; waited += WAIT_STEP_MS) {
        if (this.#stopped || !isRunning() || isStale()) return false;
        await sleep(Math.min(WAIT_STEP_MS, delay - waited));
        await heartbeat();
      }
      if (this.#stopped || !isRunning() || isStale()) return false;
      delay = Math.min(delay * 2, this.#maxRetryDelayMs);
    }
  }

  #deadLetters(chunk: IngestChunk, partition: number): DeadLetterEntry[] {
    const at = new Date().toISOString();
    return chunk.invalid.map((message) => ({
      at,
      sink: this.#sink.name,
      target: this.#sink.table,
      sequence: message.offset,
      error: {
        reason: 'undecodable' as const,
        code: null,
        message: `${this.#options.topic}[${partition}]@${message.offset}: ${message.reason}`,
      },
      payload: message.payload.toString('utf8'),
    }));
  }
}
