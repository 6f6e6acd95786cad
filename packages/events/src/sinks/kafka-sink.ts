import type { ConnectionOptions } from 'node:tls';
import {
  PortcullisError,
  SESSION_EVENT_SCHEMA_VERSION,
  silentLogger,
  type Logger,
  type SessionEvent,
} from '@portcullis/core';
import {
  CompressionTypes,
  Kafka,
  Partitioners,
  logLevel,
  type LogEntry,
  type Message,
  type Producer,
  type SASLOptions,
  type TopicMessages,
} from 'kafkajs';
import { toOcsf, type ToOcsfOptions } from '../ocsf/to-ocsf.js';
import type { SpoolRecord } from '../spool/spool-reader.js';
import type { BatchSink } from './sink-runner.js';

/** What a Kafka message's value holds: the event JSON as recorded, or its OCSF form. */
export type KafkaSinkFormat = 'native' | 'ocsf';

/**
 * Record-batch compression. kafkajs has gzip built in; snappy, lz4 and zstd need codec packages
 * registered with kafkajs, which this sink does not bring, so they are not offered.
 */
export type KafkaSinkCompression = 'gzip' | 'none';

/** Header names every message carries; consumers deduplicate by {@link KAFKA_HEADERS.eventId}. */
export const KAFKA_HEADERS = {
  /** The event's UUID: the idempotency key. */
  eventId: 'event-id',
  /** The session event schema version (`SessionEvent.schema`). */
  schemaVersion: 'schema-version',
  /** The event type (`session.start`, `statement`, …). */
  eventType: 'event-type',
  /** `native` or `ocsf`. */
  format: 'format',
  /** On dead-lettered messages: why the record could not be published normally. */
  error: 'portcullis-error',
  /** On dead-lettered messages: the record's spool sequence. */
  spoolSequence: 'spool-sequence',
} as const;

/** Options of {@link KafkaSink}. */
export interface KafkaSinkOptions {
  /** `host:port` of one or more brokers to bootstrap from. */
  readonly brokers: readonly string[];
  /** The topic events go to. */
  readonly topic: string;
  /** The spool consumer name (default `kafka`); one per sink instance reading the spool. */
  readonly name?: string;
  /** Default `native`. */
  readonly format?: KafkaSinkFormat;
  /** Default `gzip`. */
  readonly compression?: KafkaSinkCompression;
  /**
   * Where records go that cannot be published as events (not JSON, no id or session, or — for
   * OCSF — a newer schema than this build maps): default `<topic>.dead-letter`. Never dropped.
   */
  readonly deadLetterTopic?: string;
  /** kafkajs `clientId` (default `portcullis`). */
  readonly clientId?: string;
  /** TLS: `true` for the system CAs, or Node TLS options (CA, client certificate), passed through. */
  readonly ssl?: boolean | ConnectionOptions;
  /** SASL (plain, scram-sha-256, scram-sha-512, aws, oauthbearer), passed through to kafkajs. */
  readonly sasl?: SASLOptions;
  /** Connect timeout per broker (default 3,000 ms). */
  readonly connectionTimeoutMs?: number;
  /** Request timeout, also the broker's ack timeout for `acks: -1` (default 30,000 ms). */
  readonly requestTimeoutMs?: number;
  /**
   * kafkajs's own retries of a failed request before `deliver` fails (default 5, at least 1: the
   * idempotent producer needs one); the {@link SinkRunner} retries the whole delivery after that.
   */
  readonly retries?: number;
  /**
   * Most (uncompressed) value bytes in one produce request; a delivery larger than this is sent in
   * several requests, one after the other. The broker refuses a partition's batch over its
   * `message.max.bytes` (1 MiB by default) after compression: the default is 900,000 without
   * compression and 4,000,000 with gzip (event JSON compresses about tenfold), since fewer, larger
   * requests are what makes an idempotent producer with one request in flight fast.
   */
  readonly maxRequestBytes?: number;
  /** Options of the OCSF mapping (`format: 'ocsf'`). */
  readonly ocsf?: ToOcsfOptions;
  readonly logger?: Logger;
}

/** Why a delivery to Kafka failed. */
export type KafkaSinkFailure =
  /** SASL authentication failed, or the principal may not write the topic. */
  | 'auth'
  /** No broker could be reached (refused, timed out, TLS handshake failed). */
  | 'unreachable'
  /** A request timed out after the broker accepted the connection. */
  | 'timeout'
  /** The broker answered with an error (the Kafka error type is in the message). */
  | 'rejected';

/**
 * A failed delivery, with code `PCL_ERR_EVENTS_WRITE` and `failure` saying why. The message never
 * holds credentials; the kafkajs error is the `cause`.
 */
export class KafkaSinkError extends PortcullisError {
  readonly failure: KafkaSinkFailure;

  constructor(failure: KafkaSinkFailure, message: string, options?: { cause?: unknown }) {
    super('PCL_ERR_EVENTS_WRITE', message, options);
    this.name = 'KafkaSinkError';
    this.failure = failure;
  }
}

/** A record turned into a message for the events topic. */
export interface KafkaEventMessage {
  readonly kind: 'event';
  /** The session id: all of a session's events land in one partition, in order. */
  readonly key: string;
  readonly value: Buffer | string;
  readonly headers: Readonly<Record<string, string>>;
  /** The event's time in milliseconds since the epoch, as kafkajs wants it (a string). */
  readonly timestamp: string;
}

/** A record that cannot be published as an event; it goes to the dead-letter topic. */
export interface KafkaDeadLetter {
  readonly kind: 'dead-letter';
  readonly reason: string;
}

/** The fields a message needs, read from the front of a natively encoded event without parsing. */
const NATIVE_PREFIX =
  /^\{"schema":(\d+),"id":"([\w-]+)","type":"([\w.-]+)","timeUs":(\d+),"sessionId":"([\w-]+)"/;
/** Bytes decoded to look for {@link NATIVE_PREFIX}. */
const PREFIX_BYTES = 256;

function eventMessage(
  format: KafkaSinkFormat,
  value: Buffer | string,
  schema: number,
  id: string,
  type: string,
  timeUs: number,
  sessionId: string,
): KafkaEventMessage {
  return {
    kind: 'event',
    key: sessionId,
    value,
    headers: {
      [KAFKA_HEADERS.eventId]: id,
      [KAFKA_HEADERS.schemaVersion]: String(schema),
      [KAFKA_HEADERS.eventType]: type,
      [KAFKA_HEADERS.format]: format,
    },
    timestamp: String(Math.floor(timeUs / 1000)),
  };
}

function parseEvent(payload: Buffer): SessionEvent | string {
  let event: unknown;
  try {
    event = JSON.parse(payload.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  if (event === null || typeof event !== 'object') return 'not a JSON object';
  const e = event as Record<string, unknown>;
  if (typeof e['id'] !== 'string' || e['id'] === '') return 'no event id';
  if (typeof e['sessionId'] !== 'string' || e['sessionId'] === '') return 'no session id';
  if (typeof e['type'] !== 'string') return 'no event type';
  if (typeof e['schema'] !== 'number') return 'no schema version';
  if (typeof e['timeUs'] !== 'number') return 'no time';
  return event as SessionEvent;
}

/**
 * Turns one spool record (an event's JSON) into the Kafka message the sink sends: keyed by session
 * id, headers `event-id`, `schema-version`, `event-type`, `format`, timestamp the event's time.
 * `native` sends the payload bytes unchanged (the key and headers are read from the front of the
 * JSON when it starts the way `JSON.stringify` writes a SessionEvent, else from a full parse);
 * `ocsf` parses and maps with {@link toOcsf}. Records that are not events, and for OCSF events of a
 * newer schema version than this build knows, come back as a {@link KafkaDeadLetter}.
 */
export function buildKafkaMessage(
  payload: Buffer,
  format: KafkaSinkFormat,
  ocsfOptions: ToOcsfOptions = {},
): KafkaEventMessage | KafkaDeadLetter {
  if (format === 'native') {
    const m = NATIVE_PREFIX.exec(payload.toString('latin1', 0, PREFIX_BYTES));
    if (m !== null) {
      return eventMessage(format, payload, Number(m[1]), m[2]!, m[3]!, Number(m[4]), m[5]!);
    }
  }
  const event = parseEvent(payload);
  if (typeof event === 'string') return { kind: 'dead-letter', reason: event };
  if (format === 'native') {
    return eventMessage(
      format,
      payload,
      event.schema,
      event.id,
      event.type,
      event.timeUs,
      event.sessionId,
    );
  }
  if (event.schema > SESSION_EVENT_SCHEMA_VERSION) {
    return {
      kind: 'dead-letter',
      reason: `schema version ${event.schema} is newer than ${SESSION_EVENT_SCHEMA_VERSION}, which this build maps to OCSF`,
    };
  }
  let value: string;
  try {
    value = JSON.stringify(toOcsf(event, ocsfOptions));
  } catch (err) {
    return {
      kind: 'dead-letter',
      reason: `OCSF mapping failed: ${err instanceof Error ? err.message : String(err)}`,
    };
  }
  return eventMessage(
    format,
    value,
    event.schema,
    event.id,
    event.type,
    event.timeUs,
    event.sessionId,
  );
}

/** What a {@link KafkaSink} has done, for metrics. */
export interface KafkaSinkStats {
  /** Event messages Kafka acknowledged. */
  readonly sent: number;
  /** Records sent to the dead-letter topic. */
  readonly deadLettered: number;
  /** Records handed to deliver again that this process had already delivered (not re-sent). */
  readonly skipped: number;
  /** Produce requests Kafka acknowledged. */
  readonly requests: number;
  /** The highest spool sequence Kafka acknowledged in this process; -1 before the first. */
  readonly highWaterMark: number;
}

/** Protocol errors after which the idempotent producer must start over with a new producer id. */
const PRODUCER_STATE_ERRORS = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'INVALID_PRODUCER_ID_MAPPING',
]);
const AUTHORIZATION_ERRORS = new Set([
  'TOPIC_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
]);

interface KafkaJsErrorLike {
  name?: string;
  message?: string;
  type?: string;
  code?: string;
  cause?: unknown;
  originalError?: unknown;
}

/** The error and everything it wraps (kafkajs nests causes in `cause` and `originalError`). */
function chain(err: unknown): KafkaJsErrorLike[] {
  const out: KafkaJsErrorLike[] = [];
  let at: unknown = err;
  while (at !== null && typeof at === 'object' && out.length < 8) {
    const e = at as KafkaJsErrorLike;
    out.push(e);
    at = e.cause ?? e.originalError;
  }
  return out;
}

/**
 * Sends spooled events to a Kafka topic with kafkajs: an idempotent producer (`idempotent: true`,
 * `maxInFlightRequests: 1`, `acks: -1`: each request is written by all in-sync replicas before
 * it counts, and a request kafkajs retries is not written twice), messages keyed by session id
 * (the default, Java-compatible partitioner keeps a session in one partition, so in order), gzip
 * compression, headers `event-id`, `schema-version`, `event-type`, `format`.
 *
 * Delivery is at least once: a crash between Kafka's acknowledgement and the spool's, or a
 * delivery retried after a request that failed late, publishes events again, so consumers
 * deduplicate by the `event-id` header. Within one process the sink avoids that itself: it
 * remembers the highest spool sequence Kafka acknowledged (requests go out in sequence order) and
 * does not send those records again when they come back (a retried delivery resumes after the
 * part that went through).
 *
 * Failures become a {@link KafkaSinkError} (`auth`, `unreachable`, `timeout`, `rejected`); the
 * {@link SinkRunner} logs it and retries with backoff while events wait in the spool.
 */
export class KafkaSink implements BatchSink {
  readonly name: string;
  readonly #topic: string;
  readonly #deadLetterTopic: string;
  readonly #format: KafkaSinkFormat;
  readonly #compression: CompressionTypes;
  readonly #maxRequestBytes: number;
  readonly #ocsf: ToOcsfOptions;
  readonly #logger: Logger;
  readonly #kafka: Kafka;
  readonly #brokers: string;
  readonly #saslMechanism: string | null;
  readonly #requestTimeoutMs: number;
  #producer: Producer | null = null;
  #connecting: Promise<Producer> | null = null;
  #closed = false;
  #highWaterMark = -1;
  #sent = 0;
  #deadLettered = 0;
  #skipped = 0;
  #requests = 0;

  constructor(options: KafkaSinkOptions) {
    if (options.brokers.length === 0) throw new Error('KafkaSink needs at least one broker');
    if (options.topic === '') throw new Error('KafkaSink needs a topic');
    this.name = options.name ?? 'kafka';
    this.#topic = options.topic;
    this.#deadLetterTopic = options.deadLetterTopic ?? `${options.topic}.dead-letter`;
    this.#format = options.format ?? 'native';
    this.#compression =
      (options.compression ?? 'gzip') === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None;
    this.#maxRequestBytes =
      options.maxRequestBytes ??
      (this.#compression === CompressionTypes.GZIP ? 4_000_000 : 900_000);
    this.#ocsf = options.ocsf ?? {};
    this.#logger = options.logger ?? silentLogger;
    this.#brokers = options.brokers.join(',');
    this.#saslMechanism = options.sasl?.mechanism ?? null;
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    const logger = this.#logger;
    this.#kafka = new Kafka({
      clientId: options.clientId ?? 'portcullis',
      brokers: [...options.brokers],
      ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
      ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
      connectionTimeout: options.connectionTimeoutMs ?? 3_000,
      requestTimeout: this.#requestTimeoutMs,
      retry: {
        retries: Math.max(1, options.retries ?? 5),
        initialRetryTime: 100,
        maxRetryTime: 5_000,
      },
      logLevel: logLevel.WARN,
      logCreator:
        () =>
        ({ level, log }: LogEntry) => {
          const { message, timestamp: _t, logger: _l, ...fields } = log;
          // kafkajs warns that limited retries weaken exactly-once; this sink relies on
          // deduplication by event id instead, so that warning is noise.
          if (message.startsWith('Limiting retries for the idempotent producer')) return;
          const entry = { kafka: fields };
          if (level <= logLevel.WARN) logger.warn(entry, `kafkajs: ${message}`);
          else logger.debug(entry, `kafkajs: ${message}`);
        },
    });
  }

  /** Counters since the sink was created. */
  get stats(): KafkaSinkStats {
    return {
      sent: this.#sent,
      deadLettered: this.#deadLettered,
      skipped: this.#skipped,
      requests: this.#requests,
      highWaterMark: this.#highWaterMark,
    };
  }

  async deliver(records: readonly SpoolRecord[]): Promise<void> {
    if (this.#closed) throw new Error('KafkaSink is closed');
    let first = 0;
    while (first < records.length && records[first]!.sequence <= this.#highWaterMark) first++;
    this.#skipped += first;
    if (first === records.length) return;
    const producer = await this.#connect();
    let events: Message[] = [];
    let dead: Message[] = [];
    let bytes = 0;
    let lastSequence = -1;
    for (let i = first; i < records.length; i++) {
      const record = records[i]!;
      const built = buildKafkaMessage(record.payload, this.#format, this.#ocsf);
      const size = built.kind === 'event' ? Buffer.byteLength(built.value) : record.payload.length;
      if (bytes + size > this.#maxRequestBytes && lastSequence >= 0) {
        await this.#send(producer, events, dead, lastSequence);
        events = [];
        dead = [];
        bytes = 0;
      }
      if (built.kind === 'event') {
        events.push({
          key: built.key,
          value: built.value,
          headers: built.headers,
          timestamp: built.timestamp,
        });
      } else {
        this.#logger.warn(
          { sink: this.name, sequence: record.sequence, reason: built.reason },
          'spooled record is not a publishable event; sending it to the dead-letter topic',
        );
        dead.push({
          value: record.payload,
          headers: {
            [KAFKA_HEADERS.error]: built.reason,
            [KAFKA_HEADERS.spoolSequence]: String(record.sequence),
          },
        });
      }
      bytes += size;
      lastSequence = record.sequence;
    }
    await this.#send(producer, events, dead, lastSequence);
  }

  /** Disconnects the producer; later deliveries fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const producer = this.#producer ?? (await this.#connecting?.catch(() => null)) ?? null;
    this.#producer = null;
    await producer?.disconnect().catch(() => undefined);
  }

  async #send(
    producer: Producer,
    events: Message[],
    dead: Message[],
    lastSequence: number,
  ): Promise<void> {
    const topicMessages: TopicMessages[] = [];
    if (events.length > 0) topicMessages.push({ topic: this.#topic, messages: events });
    if (dead.length > 0) topicMessages.push({ topic: this.#deadLetterTopic, messages: dead });
    try {
      await producer.sendBatch({
        topicMessages,
        acks: -1,
        timeout: this.#requestTimeoutMs,
        compression: this.#compression,
      });
    } catch (err) {
      if (chain(err).some((e) => PRODUCER_STATE_ERRORS.has(e.type ?? ''))) {
        // The broker lost or fenced this producer's state: continue with a new producer id
        // (duplicates that may cause are removed downstream by event id).
        await this.#resetProducer();
      }
      throw this.#wrap(err, 'sending');
    }
    this.#requests++;
    this.#sent += events.length;
    this.#deadLettered += dead.length;
    this.#highWaterMark = lastSequence;
  }

  async #connect(): Promise<Producer> {
    if (this.#producer !== null) return this.#producer;
    this.#connecting ??= (async () => {
      const producer = this.#kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: true,
        createPartitioner: Partitioners.DefaultPartitioner,
      });
      try {
        await producer.connect();
      } catch (err) {
        await producer.disconnect().catch(() => undefined);
        throw this.#wrap(err, 'connecting');
      }
      this.#producer = producer;
      return producer;
    })().finally(() => {
      this.#connecting = null;
    });
    return this.#connecting;
  }

  async #resetProducer(): Promise<void> {
    const producer = this.#producer;
    this.#producer = null;
    await producer?.disconnect().catch(() => undefined);
  }

  #wrap(err: unknown, doing: 'connecting' | 'sending'): KafkaSinkError {
    const errors = chain(err);
    const detail = errors.at(-1)?.message ?? String(err);
    const fail = (failure: KafkaSinkFailure, summary: string): KafkaSinkError =>
      new KafkaSinkError(
        failure,
        `Kafka at ${this.#brokers} (topic ${this.#topic}): ${summary} while ${doing}: ${detail}`,
        { cause: err },
      );
    const auth = errors.find(
      (e) => e.name === 'KafkaJSSASLAuthenticationError' || AUTHORIZATION_ERRORS.has(e.type ?? ''),
    );
    if (auth !== undefined) {
      return fail(
        'auth',
        auth.name === 'KafkaJSSASLAuthenticationError'
          ? `authentication failed (SASL ${this.#saslMechanism ?? 'not configured'})`
          : `access refused (${auth.type})`,
      );
    }
    if (errors.some((e) => e.name === 'KafkaJSRequestTimeoutError')) {
      return fail('timeout', 'request timed out');
    }
    const protocol = errors.find((e) => e.name === 'KafkaJSProtocolError' && e.type);
    if (protocol !== undefined) return fail('rejected', `the broker answered ${protocol.type}`);
    const unreachable = errors.some(
      (e) =>
        e.name === 'KafkaJSConnectionError' ||
        e.name === 'KafkaJSConnectionClosedError' ||
        e.name === 'KafkaJSBrokerNotFound' ||
        e.name === 'KafkaJSNoBrokerAvailableError' ||
        e.code === 'ECONNREFUSED',
    );
    if (unreachable) return fail('unreachable', 'no broker reachable');
    return fail('rejected', 'delivery failed');
  }
}
