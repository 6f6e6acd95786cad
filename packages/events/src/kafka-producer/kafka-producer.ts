import type { ConnectionOptions } from 'node:tls';
import { silentLogger, type Logger } from '@portcullis/core';
import { compressRecords, GZIP_LEVELS } from './compress-records.js';
import { KAFKA_APIS } from './kafka-apis.js';
import { KafkaClientError } from './kafka-client-error.js';
import { KafkaConnection, type KafkaSasl } from './kafka-connection.js';
import {
  AUTHORIZATION_ERRORS,
  KafkaErrorCode,
  kafkaErrorName,
  PRODUCER_STATE_ERRORS,
  RETRIABLE_ERRORS,
  STALE_METADATA_ERRORS,
} from './kafka-error-codes.js';
import { decodeInitProducerIdResponse, encodeInitProducerIdRequest } from './init-producer-id.js';
import { decodeMetadataResponse, encodeMetadataRequest } from './metadata.js';
import { partitionOfKey, partitionOfStringKey } from './murmur2-partition.js';
import { decodeProduceResponse, encodeProduceRequest, type ProduceTopicData } from './produce.js';
import { ProduceSet } from './produce-set.js';
import type { ProducerRecord, RecordCompression } from './record-batch-builder.js';

/** Options of {@link KafkaProducer}. */
export interface KafkaProducerOptions {
  /** `host:port` (or `[v6-address]:port`) of one or more brokers to bootstrap from. */
  readonly brokers: readonly string[];
  /** Sent in every request (default `portcullis`). */
  readonly clientId?: string;
  /** TLS: `true` for the system CAs, or Node TLS options (CA, client certificate), passed through. */
  readonly ssl?: boolean | ConnectionOptions;
  readonly sasl?: KafkaSasl;
  /** Time for a TCP (and TLS) connection to a broker (default 3,000 ms). */
  readonly connectionTimeoutMs?: number;
  /** Time for a request's answer, also the broker's ack timeout (default 30,000 ms). */
  readonly requestTimeoutMs?: number;
  /** Retries of a failed produce round before `send` fails (default 5). */
  readonly retries?: number;
  /** First wait before a retry (default 100 ms); doubles per retry up to `maxRetryBackoffMs`. */
  readonly retryBackoffMs?: number;
  /** Longest wait before a retry (default 2,000 ms). */
  readonly maxRetryBackoffMs?: number;
  /** `-1`: every in-sync replica wrote the batch (default); `1`: the leader did. */
  readonly acks?: -1 | 1;
  /** Default `none`. */
  readonly compression?: RecordCompression;
  /** gzip level, 1 (fastest, the default) to 9. */
  readonly gzipLevel?: number;
  /** Ask brokers to create missing topics (default true; the broker's setting decides). */
  readonly allowAutoTopicCreation?: boolean;
  /**
   * Metadata older than this is fetched again before a send (default 300,000 ms, as the Java
   * client): leaders that moved quietly and partitions added to a topic are picked up.
   */
  readonly metadataMaxAgeMs?: number;
  readonly logger?: Logger;
}

/** What a successful send did. */
export interface ProduceSummary {
  readonly records: number;
  /** Produce requests it took, retries included. */
  readonly requests: number;
}

interface TopicState {
  /** Leader node id per partition; -1 where there is none. */
  readonly leaders: Int32Array;
  readonly fetchedAt: number;
}

/** A partition's finished batch on its way, with the sequence numbers it was given. */
interface OutgoingBatch {
  readonly topic: string;
  readonly partition: number;
  readonly records: number;
  chunks: Buffer[];
}

interface RoundOutcome {
  readonly retry: OutgoingBatch[];
  readonly lastError: KafkaClientError | null;
  readonly fatal: KafkaClientError | null;
  readonly requests: number;
}

const SEQUENCE_LIMIT = 2 ** 31;

function parseBroker(broker: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(broker.trim());
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) {
    throw new Error(`Kafka broker "${broker}" is not host:port`);
  }
  return { host: match[1] ?? match[2]!, port };
}

function asClientError(err: unknown): KafkaClientError {
  if (err instanceof KafkaClientError) return err;
  return new KafkaClientError('broker', err instanceof Error ? err.message : String(err), {
    cause: err,
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A lean Kafka producer: it speaks the wire protocol itself (see {@link KAFKA_APIS} for the
 * versions) and encodes record batches with little work per record, for one process to publish
 * 100,000 events a second.
 *
 * Idempotent: it takes a producer id (InitProducerId) and numbers each partition's records, so
 * a batch retried after a lost answer is not written twice. Records are grouped by partition
 * (murmur2 of the key, as the Java client; keyless records round-robin), one Produce request
 * per leader broker, at most one in flight per broker, requests to different leaders at once;
 * sends run one after another. A send resolves when every partition's batch is acknowledged
 * (`acks`), and fails otherwise:
 *
 * - retriable broker errors (leader moved, not enough replicas, timeouts, lost connections) are
 *   retried up to `retries` times with backoff, with the same sequence numbers, after fetching
 *   metadata again where the leaders may have moved; `DUPLICATE_SEQUENCE_NUMBER` is a success;
 * - errors that mean the broker lost this producer's sequence (`OUT_OF_ORDER_SEQUENCE_NUMBER`,
 *   `UNKNOWN_PRODUCER_ID`, `INVALID_PRODUCER_EPOCH`, …), authorization failures and rejected
 *   batches (`MESSAGE_TOO_LARGE`, …) fail at once.
 *
 * After any failed send the producer id is dropped and the next send takes a new one: a batch
 * whose fate is unknown must not be mistaken for a duplicate of a different later batch. The
 * caller retries; records may then arrive twice, so consumers deduplicate.
 *
 * Not here: transactions, acks 0, compression other than gzip, consumers.
 */
export class KafkaProducer {
  readonly #bootstrap: readonly string[];
  readonly #clientId: string;
  readonly #ssl: boolean | ConnectionOptions | undefined;
  readonly #sasl: KafkaSasl | undefined;
  readonly #connectionTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #retries: number;
  readonly #retryBackoffMs: number;
  readonly #maxRetryBackoffMs: number;
  readonly #acks: -1 | 1;
  readonly #compression: RecordCompression;
  readonly #gzipLevel: number;
  readonly #allowAutoTopicCreation: boolean;
  readonly #metadataMaxAgeMs: number;
  readonly #logger: Logger;
  readonly #connections = new Map<string, Promise<KafkaConnection>>();
  /** Node id → `host:port`, from metadata. */
  readonly #nodes = new Map<number, string>();
  readonly #topics = new Map<string, TopicState>();
  /** Next sequence number per topic and partition, for the current producer id. */
  readonly #sequences = new Map<string, number[]>();
  #metadataStale = false;
  #producerId: bigint | null = null;
  #producerEpoch = 0;
  #sending: Promise<unknown> = Promise.resolve();
  #roundRobin = 0;
  #closed = false;

  constructor(options: KafkaProducerOptions) {
    if (options.brokers.length === 0) throw new Error('KafkaProducer needs at least one broker');
    this.#bootstrap = options.brokers.map((broker) => {
      const { host, port } = parseBroker(broker);
      return `${host.includes(':') ? `[${host}]` : host}:${port}`;
    });
    const gzipLevel = options.gzipLevel ?? GZIP_LEVELS.default;
    if (
      !Number.isInteger(gzipLevel) ||
      gzipLevel < GZIP_LEVELS.min ||
      gzipLevel > GZIP_LEVELS.max
    ) {
      throw new RangeError(`gzipLevel must be a whole number from 1 to 9, not ${gzipLevel}`);
    }
    this.#clientId = options.clientId ?? 'portcullis';
    this.#ssl = options.ssl;
    this.#sasl = options.sasl;
    this.#connectionTimeoutMs = options.connectionTimeoutMs ?? 3_000;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#retries = Math.max(0, options.retries ?? 5);
    this.#retryBackoffMs = options.retryBackoffMs ?? 100;
    this.#maxRetryBackoffMs = options.maxRetryBackoffMs ?? 2_000;
    this.#acks = options.acks ?? -1;
    this.#compression = options.compression ?? 'none';
    this.#gzipLevel = gzipLevel;
    this.#allowAutoTopicCreation = options.allowAutoTopicCreation ?? true;
    this.#metadataMaxAgeMs = options.metadataMaxAgeMs ?? 300_000;
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * The number of partitions of `topic`, fetching its metadata the first time and when it is
   * older than `metadataMaxAgeMs` (the broker creates a missing topic when it allows; this waits
   * up to the request timeout for its leaders).
   */
  async partitionCount(topic: string): Promise<number> {
    this.#checkOpen();
    const known = this.#topics.get(topic);
    if (known !== undefined) {
      if (Date.now() - known.fetchedAt > this.#metadataMaxAgeMs) {
        // Best effort: when no broker answers now, the send finds out and says so.
        await this.#fetchMetadata([topic]).catch(() => undefined);
      }
      return (this.#topics.get(topic) ?? known).leaders.length;
    }
    const deadline = Date.now() + this.#requestTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const errorCode = await this.#fetchMetadata([topic]);
      const state = this.#topics.get(topic);
      if (errorCode === 0 && state !== undefined) return state.leaders.length;
      const error = this.#topicError(topic, errorCode);
      if (AUTHORIZATION_ERRORS.has(errorCode)) throw error;
      // LEADER_NOT_AVAILABLE: being created. UNKNOWN_TOPIC_OR_PARTITION: not (yet) known to this
      // broker; it persists when the broker does not create topics, so it is retried less.
      const waiting =
        errorCode === KafkaErrorCode.LEADER_NOT_AVAILABLE ||
        (RETRIABLE_ERRORS.has(errorCode) && attempt < Math.max(this.#retries, 3));
      if (!waiting || Date.now() >= deadline) throw error;
      await sleep(Math.min(this.#backoff(attempt), Math.max(0, deadline - Date.now())));
    }
  }

  /** The partition for a record's key among `partitions`: murmur2 as the Java client; keyless round-robin. */
  partitionOf(key: string | Uint8Array | null | undefined, partitions: number): number {
    if (key === null || key === undefined) return this.#roundRobin++ % partitions;
    return typeof key === 'string'
      ? partitionOfStringKey(key, partitions)
      : partitionOfKey(key, partitions);
  }

  /** Sends `records` to `topic`: partitioned, batched, acknowledged. */
  async sendRecords(topic: string, records: readonly ProducerRecord[]): Promise<ProduceSummary> {
    const partitions = await this.partitionCount(topic);
    const set = new ProduceSet({ initialBatchBytes: 4096 });
    for (const record of records) {
      set.batch(topic, this.partitionOf(record.key, partitions)).append(record);
    }
    return this.send(set);
  }

  /**
   * Sends every batch of `set` and resolves once all are acknowledged. The set's batches must
   * stay unchanged until then; clear the set afterwards to reuse it.
   */
  send(set: ProduceSet): Promise<ProduceSummary> {
    if (this.#closed) return Promise.reject(this.#closedError());
    const run = this.#sending.then(() => this.#sendNow(set));
    this.#sending = run.catch(() => undefined);
    return run;
  }

  /** Closes every connection; sends in flight fail, later ones are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    const connections = [...this.#connections.values()];
    this.#connections.clear();
    for (const connection of connections) {
      (await connection.catch(() => null))?.close();
    }
  }

  async #sendNow(set: ProduceSet): Promise<ProduceSummary> {
    this.#checkOpen();
    const sets = set.batches();
    if (sets.length === 0) return { records: 0, requests: 0 };
    try {
      await this.#ensureProducerId();
      const batches = await this.#finishBatches(set);
      const requests = await this.#deliver(batches);
      return { records: set.recordCount, requests };
    } catch (err) {
      if (this.#producerId !== null) {
        this.#logger.debug(
          { err },
          'Kafka send failed; the next send starts with a new producer id',
        );
        this.#resetProducer();
      }
      throw err;
    }
  }

  /** Gives each batch its producer id and sequence numbers, writes its header, compresses. */
  async #finishBatches(set: ProduceSet): Promise<OutgoingBatch[]> {
    const producerId = this.#producerId!;
    const producerEpoch = this.#producerEpoch;
    const compressing: Promise<void>[] = [];
    const out: OutgoingBatch[] = [];
    for (const { topic, partition, builder } of set.batches()) {
      let sequences = this.#sequences.get(topic);
      if (sequences === undefined) {
        sequences = [];
        this.#sequences.set(topic, sequences);
      }
      const baseSequence = sequences[partition] ?? 0;
      sequences[partition] = (baseSequence + builder.recordCount) % SEQUENCE_LIMIT;
      const producer = { producerId, producerEpoch, baseSequence };
      const batch: OutgoingBatch = { topic, partition, records: builder.recordCount, chunks: [] };
      out.push(batch);
      if (this.#compression === 'none') {
        batch.chunks = [builder.finish(producer)];
      } else {
        const compression = this.#compression;
        compressing.push(
          compressRecords(builder.records(), compression, this.#gzipLevel).then((compressed) => {
            batch.chunks = [
              builder.finishCompressed(producer, compression, compressed),
              compressed,
            ];
          }),
        );
      }
    }
    await Promise.all(compressing);
    return out;
  }

  /** Produce rounds until every batch is acknowledged; returns the requests made. */
  async #deliver(batches: OutgoingBatch[]): Promise<number> {
    let pending = batches;
    let requests = 0;
    for (let attempt = 0; ; attempt++) {
      if (this.#metadataStale) await this.#refreshForRetry(pending);
      const outcome = await this.#produceRound(pending);
      requests += outcome.requests;
      if (outcome.fatal !== null) throw outcome.fatal;
      if (outcome.retry.length === 0) return requests;
      const error = outcome.lastError!;
      if (attempt >= this.#retries) throw error;
      const delay = this.#backoff(attempt);
      this.#logger.debug(
        { err: error, batches: outcome.retry.length, retryInMs: delay },
        'Kafka produce failed; retrying with the same sequence numbers',
      );
      await sleep(delay);
      this.#checkOpen();
      pending = outcome.retry;
    }
  }

  /** Fetches metadata before a retry; a broker that cannot answer now fails the round instead. */
  async #refreshForRetry(batches: readonly OutgoingBatch[]): Promise<void> {
    try {
      await this.#fetchMetadata([...new Set(batches.map((b) => b.topic))]);
    } catch (err) {
      const error = asClientError(err);
      if (error.failure === 'auth' || error.failure === 'unsupported') throw error;
    }
  }

  async #produceRound(pending: readonly OutgoingBatch[]): Promise<RoundOutcome> {
    const byNode = new Map<number, OutgoingBatch[]>();
    const retry: OutgoingBatch[] = [];
    let lastError: KafkaClientError | null = null;
    for (const batch of pending) {
      const leader = this.#topics.get(batch.topic)?.leaders[batch.partition] ?? -1;
      if (leader < 0 || !this.#nodes.has(leader)) {
        this.#metadataStale = true;
        retry.push(batch);
        lastError = this.#partitionError(
          batch,
          KafkaErrorCode.LEADER_NOT_AVAILABLE,
          'no known leader',
        );
        continue;
      }
      const list = byNode.get(leader);
      if (list === undefined) byNode.set(leader, [batch]);
      else list.push(batch);
    }
    const outcomes = await Promise.all(
      [...byNode].map(([node, batches]) => this.#produceTo(this.#nodes.get(node)!, batches)),
    );
    let fatal: KafkaClientError | null = null;
    let requests = 0;
    for (const outcome of outcomes) {
      retry.push(...outcome.retry);
      lastError = outcome.lastError ?? lastError;
      fatal ??= outcome.fatal;
      requests += outcome.requests;
    }
    return { retry, lastError, fatal, requests };
  }

  /** One Produce request to one broker with its partitions' batches. */
  async #produceTo(address: string, batches: OutgoingBatch[]): Promise<RoundOutcome> {
    const retryAll = (error: KafkaClientError): RoundOutcome => {
      this.#metadataStale = true;
      return { retry: batches, lastError: error, fatal: null, requests: 0 };
    };
    const fatal = (error: KafkaClientError): RoundOutcome => ({
      retry: [],
      lastError: null,
      fatal: error,
      requests: 0,
    });
    let connection: KafkaConnection;
    try {
      connection = await this.#connection(address);
    } catch (err) {
      const error = asClientError(err);
      return error.failure === 'unreachable' ? retryAll(error) : fatal(error);
    }
    const topics = new Map<string, { partition: number; batch: Buffer[] }[]>();
    for (const batch of batches) {
      const partitions = topics.get(batch.topic);
      const entry = { partition: batch.partition, batch: batch.chunks };
      if (partitions === undefined) topics.set(batch.topic, [entry]);
      else partitions.push(entry);
    }
    const data: ProduceTopicData[] = [...topics].map(([topic, partitions]) => ({
      topic,
      partitions,
    }));
    let response;
    try {
      const api = KAFKA_APIS.produce;
      response = await connection.request(
        api,
        connection.versionOf(api),
        encodeProduceRequest(this.#acks, this.#requestTimeoutMs, data),
        decodeProduceResponse,
      );
    } catch (err) {
      const error = asClientError(err);
      return error.failure === 'timeout' || error.failure === 'closed'
        ? retryAll(error)
        : fatal(error);
    }
    const retry: OutgoingBatch[] = [];
    let lastError: KafkaClientError | null = null;
    for (const batch of batches) {
      const answer = response.topics
        .find((t) => t.topic === batch.topic)
        ?.partitions.find((p) => p.partition === batch.partition);
      if (answer === undefined) {
        return fatal(
          new KafkaClientError(
            'malformed',
            `Kafka broker ${address} did not answer for ${batch.topic}/${batch.partition}`,
            { broker: address },
          ),
        );
      }
      const code = answer.errorCode;
      if (code === 0 || code === KafkaErrorCode.DUPLICATE_SEQUENCE_NUMBER) continue;
      if (RETRIABLE_ERRORS.has(code)) {
        if (STALE_METADATA_ERRORS.has(code)) this.#metadataStale = true;
        retry.push(batch);
        lastError = this.#partitionError(batch, code, `from ${address}`);
        continue;
      }
      if (PRODUCER_STATE_ERRORS.has(code)) {
        return fatal(
          this.#partitionError(
            batch,
            code,
            `from ${address}: the broker lost this producer's state`,
          ),
        );
      }
      return fatal(this.#partitionError(batch, code, `from ${address}`));
    }
    return { retry, lastError, fatal: null, requests: 1 };
  }

  async #ensureProducerId(): Promise<void> {
    if (this.#producerId !== null) return;
    for (let attempt = 0; ; attempt++) {
      let error: KafkaClientError;
      try {
        const connection = await this.#anyConnection();
        const api = KAFKA_APIS.initProducerId;
        const response = await connection.request(
          api,
          connection.versionOf(api),
          encodeInitProducerIdRequest(),
          decodeInitProducerIdResponse,
        );
        if (response.errorCode === 0) {
          this.#producerId = response.producerId;
          this.#producerEpoch = response.producerEpoch;
          this.#sequences.clear();
          return;
        }
        const code = response.errorCode;
        error = new KafkaClientError(
          AUTHORIZATION_ERRORS.has(code) ? 'auth' : 'broker',
          `Kafka broker ${connection.address} refused a producer id: ${kafkaErrorName(code)}`,
          { broker: connection.address, errorCode: code },
        );
        if (!RETRIABLE_ERRORS.has(code)) throw error;
      } catch (err) {
        error = asClientError(err);
        if (error.failure !== 'timeout' && error.failure !== 'closed') throw error;
      }
      if (attempt >= this.#retries) throw error;
      await sleep(this.#backoff(attempt));
    }
  }

  /**
   * Fetches metadata for `topics` and every topic already known (so all of them are current
   * afterwards) from any broker; returns the first topic's error code.
   */
  async #fetchMetadata(topics: readonly string[]): Promise<number> {
    const connection = await this.#anyConnection();
    const api = KAFKA_APIS.metadata;
    const version = connection.versionOf(api);
    const wanted = [...new Set([...topics, ...this.#topics.keys()])];
    const response = await connection.request(
      api,
      version,
      encodeMetadataRequest(version, wanted, this.#allowAutoTopicCreation),
      (reader) => decodeMetadataResponse(version, reader),
    );
    for (const broker of response.brokers) {
      const host = broker.host.includes(':') ? `[${broker.host}]` : broker.host;
      this.#nodes.set(broker.nodeId, `${host}:${broker.port}`);
    }
    for (const topic of response.topics) {
      if (topic.errorCode !== 0 || topic.partitions.length === 0) continue;
      let count = 0;
      for (const p of topic.partitions) count = Math.max(count, p.partition + 1);
      const leaders = new Int32Array(count).fill(-1);
      for (const p of topic.partitions) leaders[p.partition] = p.leader;
      this.#topics.set(topic.name, { leaders, fetchedAt: Date.now() });
    }
    this.#metadataStale = false;
    const first = response.topics.find((t) => t.name === topics[0]);
    return first?.errorCode ?? KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
  }

  /** An open connection to any broker: one already open, else the first that connects. */
  async #anyConnection(): Promise<KafkaConnection> {
    for (const pending of this.#connections.values()) {
      const connection = await pending.catch(() => null);
      if (connection?.usable) return connection;
    }
    const candidates = [...new Set([...this.#nodes.values(), ...this.#bootstrap])];
    let lastError: KafkaClientError | null = null;
    for (const address of candidates) {
      try {
        return await this.#connection(address);
      } catch (err) {
        lastError = asClientError(err);
        if (lastError.failure !== 'unreachable') throw lastError;
      }
    }
    throw new KafkaClientError(
      'unreachable',
      `no Kafka broker reachable (tried ${candidates.join(', ')}): ${lastError?.message ?? 'none'}`,
      { cause: lastError ?? undefined },
    );
  }

  async #connection(address: string): Promise<KafkaConnection> {
    this.#checkOpen();
    const existing = this.#connections.get(address);
    if (existing !== undefined) {
      const connection = await existing.catch(() => null);
      if (connection?.usable) return connection;
      connection?.close();
      if (this.#connections.get(address) === existing) this.#connections.delete(address);
    }
    const { host, port } = parseBroker(address);
    const opening = KafkaConnection.open({
      host,
      port,
      clientId: this.#clientId,
      ssl: this.#ssl,
      sasl: this.#sasl,
      connectionTimeoutMs: this.#connectionTimeoutMs,
      requestTimeoutMs: this.#requestTimeoutMs,
    });
    this.#connections.set(address, opening);
    try {
      const connection = await opening;
      if (this.#closed) connection.close();
      return connection;
    } catch (err) {
      if (this.#connections.get(address) === opening) this.#connections.delete(address);
      throw err;
    }
  }

  #resetProducer(): void {
    this.#producerId = null;
    this.#sequences.clear();
  }

  #backoff(attempt: number): number {
    const base = Math.min(this.#maxRetryBackoffMs, this.#retryBackoffMs * 2 ** attempt);
    return Math.round(base * (0.8 + Math.random() * 0.4));
  }

  #topicError(topic: string, errorCode: number): KafkaClientError {
    const name = kafkaErrorName(errorCode);
    const hint =
      errorCode === KafkaErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        ? ' (it does not exist, and the broker does not create topics on use: create it)'
        : '';
    return new KafkaClientError(
      AUTHORIZATION_ERRORS.has(errorCode) ? 'auth' : 'broker',
      `Kafka topic ${topic} cannot be written: ${name}${hint}`,
      { errorCode },
    );
  }

  #partitionError(batch: OutgoingBatch, errorCode: number, detail: string): KafkaClientError {
    return new KafkaClientError(
      AUTHORIZATION_ERRORS.has(errorCode) ? 'auth' : 'broker',
      `Kafka refused ${batch.records} record(s) for ${batch.topic}/${batch.partition} ${detail}: ${kafkaErrorName(errorCode)}`,
      { errorCode },
    );
  }

  #checkOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): KafkaClientError {
    return new KafkaClientError('producer-closed', 'the Kafka producer is closed');
  }
}
