import type { ConnectionOptions } from 'node:tls';
import {
  PortcullisError,
  SESSION_EVENT_SCHEMA_VERSION,
  silentLogger,
  type Logger,
  type SessionEvent,
} from '@portcullis/core';
import { GZIP_LEVELS } from '../kafka-producer/compress-records.js';
import { KafkaClientError } from '../kafka-producer/kafka-client-error.js';
import type { KafkaSasl } from '../kafka-producer/kafka-connection.js';
import { kafkaErrorName } from '../kafka-producer/kafka-error-codes.js';
import { KafkaProducer } from '../kafka-producer/kafka-producer.js';
import { partitionOfKey } from '../kafka-producer/murmur2-partition.js';
import { ProduceSet } from '../kafka-producer/produce-set.js';
import type { RecordBatchBuilder } from '../kafka-producer/record-batch-builder.js';
import { encodeOcsfJson, type ToOcsfOptions } from '../ocsf/to-ocsf.js';
import type { SpoolRecord } from '../spool/spool-reader.js';
import type { BatchSink } from './sink-runner.js';

/** What a Kafka message's value holds: the event JSON as recorded, or its OCSF form. */
export type KafkaSinkFormat = 'native' | 'ocsf';

/**
 * Record-batch compression: gzip (every Kafka broker decodes it) or none. Snappy, lz4 and zstd
 * would need native codecs, so they are not offered.
 */
export type KafkaSinkCompression = 'gzip' | 'none';

/** SASL credentials for the brokers: PLAIN or SCRAM, with a user name and password. */
export type KafkaSinkSasl = KafkaSasl;

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
  /** gzip level from 1 (fastest, the default) to 9 (smallest). */
  readonly gzipLevel?: number;
  /**
   * Where records go that cannot be published as events (not JSON, no id or session, or — for
   * OCSF — a newer schema than this build maps): default `<topic>.dead-letter`. Never dropped.
   */
  readonly deadLetterTopic?: string;
  /** The client id sent to the brokers (default `portcullis`). */
  readonly clientId?: string;
  /** TLS: `true` for the system CAs, or Node TLS options (CA, client certificate), passed through. */
  readonly ssl?: boolean | ConnectionOptions;
  /** SASL: `plain`, `scram-sha-256` or `scram-sha-512` with a user name and password. */
  readonly sasl?: KafkaSinkSasl;
  /** Connect timeout per broker (default 3,000 ms). */
  readonly connectionTimeoutMs?: number;
  /** Request timeout, also the broker's ack timeout for `acks: -1` (default 30,000 ms). */
  readonly requestTimeoutMs?: number;
  /**
   * Retries of a failed produce request, with the same sequence numbers, before `deliver` fails
   * (default 5); the {@link SinkRunner} retries the whole delivery after that.
   */
  readonly retries?: number;
  /**
   * Most (uncompressed) value bytes in one produce request (default 4,000,000); a delivery larger
   * than this is sent in several requests, one after the other, the next encoded while one is in
   * flight. Fewer, larger requests are what makes an idempotent producer with one request in
   * flight fast. Without compression each partition's batch is also kept under 1,000,000 bytes,
   * below the broker's default `message.max.bytes` (1 MiB), which applies per batch after
   * compression (event JSON compresses about tenfold with gzip).
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
 * holds credentials; the producer's error is the `cause`.
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
  /** The event's time in milliseconds since the epoch, as a decimal string (kafkajs's form). */
  readonly timestamp: string;
}

/** A record that cannot be published as an event; it goes to the dead-letter topic. */
export interface KafkaDeadLetter {
  readonly kind: 'dead-letter';
  readonly reason: string;
}

/** Bytes searched for the fields of a natively encoded event (as a 256-character regex did). */
const PREFIX_BYTES = 256;

/**
 * Where the fields a message needs lie in a natively encoded event: byte offsets into the
 * payload, and the two numbers. One instance is reused for every record.
 */
interface NativeEventFields {
  schemaStart: number;
  schemaEnd: number;
  idStart: number;
  idEnd: number;
  typeStart: number;
  typeEnd: number;
  timeUs: number;
  sessionStart: number;
  sessionEnd: number;
}

const ascii = (text: string): Uint8Array => Buffer.from(text, 'latin1');
const SCHEMA_OPEN = ascii('{"schema":');
const ID_OPEN = ascii(',"id":"');
const TYPE_OPEN = ascii('","type":"');
const TIME_OPEN = ascii('","timeUs":');
const SESSION_OPEN = ascii(',"sessionId":"');

/** `bytes` at `pos` when `payload` holds them there (before `limit`): the position after; else -1. */
function literal(payload: Uint8Array, pos: number, bytes: Uint8Array, limit: number): number {
  if (pos < 0 || pos + bytes.length > limit) return -1;
  for (let i = 0; i < bytes.length; i++) if (payload[pos + i] !== bytes[i]) return -1;
  return pos + bytes.length;
}

/** The end of a run of decimal digits from `pos` (pos itself when there is none). */
function digits(payload: Uint8Array, pos: number, limit: number): number {
  while (pos < limit && payload[pos]! >= 0x30 && payload[pos]! <= 0x39) pos++;
  return pos;
}

/** Byte classes for {@link word}: 1 for `[A-Za-z0-9_-]`, 2 for `.`. */
const WORD_BYTES = new Uint8Array(256);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-') {
  WORD_BYTES[c.charCodeAt(0)] = 1;
}
WORD_BYTES[0x2e] = 2;

/** The end of a run of `[A-Za-z0-9_-]` (and `.` when `dots`) from `pos`. */
function word(payload: Uint8Array, pos: number, limit: number, dots: boolean): number {
  const accepted = dots ? 3 : 1;
  while (pos < limit && (WORD_BYTES[payload[pos]!]! & accepted) !== 0) pos++;
  return pos;
}

function decimal(payload: Uint8Array, start: number, end: number): number {
  let n = 0;
  for (let i = start; i < end; i++) n = n * 10 + payload[i]! - 0x30;
  return n;
}

/**
 * Finds the key and header fields at the front of an event the way `JSON.stringify` writes a
 * SessionEvent (`{"schema":1,"id":"…","type":"…","timeUs":…,"sessionId":"…"`), within its first
 * 256 bytes, without decoding text: fills `out` and returns true, or false when the payload does
 * not start that way (then a full parse decides). Numbers with a leading zero or beyond the safe
 * integers also go the slow way, so the header and timestamp are exactly what a parse gives.
 */
function scanNativeEvent(payload: Uint8Array, out: NativeEventFields): boolean {
  const limit = Math.min(payload.length, PREFIX_BYTES);
  let pos = literal(payload, 0, SCHEMA_OPEN, limit);
  if (pos < 0) return false;
  out.schemaStart = pos;
  pos = digits(payload, pos, limit);
  out.schemaEnd = pos;
  pos = literal(payload, pos, ID_OPEN, limit);
  if (pos < 0) return false;
  out.idStart = pos;
  pos = word(payload, pos, limit, false);
  out.idEnd = pos;
  pos = literal(payload, pos, TYPE_OPEN, limit);
  if (pos < 0) return false;
  out.typeStart = pos;
  pos = word(payload, pos, limit, true);
  out.typeEnd = pos;
  pos = literal(payload, pos, TIME_OPEN, limit);
  if (pos < 0) return false;
  const timeStart = pos;
  pos = digits(payload, pos, limit);
  const timeEnd = pos;
  pos = literal(payload, pos, SESSION_OPEN, limit);
  if (pos < 0) return false;
  out.sessionStart = pos;
  pos = word(payload, pos, limit, false);
  out.sessionEnd = pos;
  if (pos >= limit || payload[pos] !== 0x22) return false;
  const plainNumber = (start: number, end: number): boolean =>
    end > start && end - start <= 16 && (end - start === 1 || payload[start] !== 0x30);
  if (!plainNumber(out.schemaStart, out.schemaEnd) || !plainNumber(timeStart, timeEnd)) {
    return false;
  }
  if (out.idEnd === out.idStart || out.typeEnd === out.typeStart) return false;
  if (out.sessionEnd === out.sessionStart) return false;
  out.timeUs = decimal(payload, timeStart, timeEnd);
  return out.timeUs <= Number.MAX_SAFE_INTEGER;
}

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

const fieldsOfBuild: NativeEventFields = {
  schemaStart: 0,
  schemaEnd: 0,
  idStart: 0,
  idEnd: 0,
  typeStart: 0,
  typeEnd: 0,
  timeUs: 0,
  sessionStart: 0,
  sessionEnd: 0,
};

/**
 * Turns one spool record (an event's JSON) into the Kafka message the sink sends: keyed by session
 * id, headers `event-id`, `schema-version`, `event-type`, `format`, timestamp the event's time.
 * `native` sends the payload bytes unchanged (the key and headers are read from the front of the
 * JSON when it starts the way `JSON.stringify` writes a SessionEvent, else from a full parse);
 * `ocsf` parses and maps with {@link encodeOcsfJson} (the JSON of `toOcsf`). Records that are not events, and for OCSF events of a
 * newer schema version than this build knows, come back as a {@link KafkaDeadLetter}.
 */
export function buildKafkaMessage(
  payload: Buffer,
  format: KafkaSinkFormat,
  ocsfOptions: ToOcsfOptions = {},
): KafkaEventMessage | KafkaDeadLetter {
  if (format === 'native' && scanNativeEvent(payload, fieldsOfBuild)) {
    const f = fieldsOfBuild;
    const text = (start: number, end: number): string => payload.toString('latin1', start, end);
    return eventMessage(
      format,
      payload,
      Number(text(f.schemaStart, f.schemaEnd)),
      text(f.idStart, f.idEnd),
      text(f.typeStart, f.typeEnd),
      f.timeUs,
      text(f.sessionStart, f.sessionEnd),
    );
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
    value = encodeOcsfJson(event, ocsfOptions);
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

/** Header names as bytes, written into every record without encoding. */
const HEADER_EVENT_ID = ascii(KAFKA_HEADERS.eventId);
const HEADER_SCHEMA_VERSION = ascii(KAFKA_HEADERS.schemaVersion);
const HEADER_EVENT_TYPE = ascii(KAFKA_HEADERS.eventType);
const HEADER_FORMAT = ascii(KAFKA_HEADERS.format);
const FORMAT_NATIVE = ascii('native');
/** Bytes a record adds around its value (key, headers, lengths), at most, for events. */
const RECORD_OVERHEAD = 160;
/**
 * Largest uncompressed batch: under the broker's default `message.max.bytes` (1,048,588), which
 * counts a whole batch, keys and headers included.
 */
const MAX_UNCOMPRESSED_BATCH_BYTES = 1_000_000;

/** One request's worth of records: the set they are encoded into and what it holds. */
interface Chunk {
  readonly set: ProduceSet;
  events: number;
  dead: number;
  bytes: number;
  lastSequence: number;
}

/**
 * Sends spooled events to a Kafka topic with Portcullis's own producer ({@link KafkaProducer}):
 * idempotent (`acks: -1`, each request written by all in-sync replicas before it counts, a
 * retried request not written twice), one request in flight, messages keyed by session id (the
 * Java client's murmur2 partitioning keeps a session in one partition, so in order), gzip
 * compression, headers `event-id`, `schema-version`, `event-type`, `format`.
 *
 * Natively formatted events go from the spool's buffer into the record batch directly: the key
 * and headers are copied from the front of the JSON, the payload after them; no message object
 * or string per event. While one request is in flight the next is encoded.
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
  readonly #maxRequestBytes: number;
  readonly #maxBatchBytes: number;
  readonly #ocsf: ToOcsfOptions;
  readonly #logger: Logger;
  readonly #producer: KafkaProducer;
  readonly #brokers: string;
  readonly #saslMechanism: string | null;
  /** Two sets: one is encoded while the other is in flight. */
  readonly #sets: [ProduceSet, ProduceSet] = [new ProduceSet(), new ProduceSet()];
  readonly #fields: NativeEventFields = { ...fieldsOfBuild };
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
    const compression = options.compression ?? 'gzip';
    this.#maxRequestBytes = options.maxRequestBytes ?? 4_000_000;
    this.#maxBatchBytes =
      compression === 'gzip' ? Number.POSITIVE_INFINITY : MAX_UNCOMPRESSED_BATCH_BYTES;
    this.#ocsf = options.ocsf ?? {};
    this.#logger = options.logger ?? silentLogger;
    this.#brokers = options.brokers.join(',');
    this.#saslMechanism = options.sasl?.mechanism ?? null;
    this.#producer = new KafkaProducer({
      brokers: options.brokers,
      clientId: options.clientId ?? 'portcullis',
      ...(options.ssl === undefined ? {} : { ssl: options.ssl }),
      ...(options.sasl === undefined ? {} : { sasl: options.sasl }),
      connectionTimeoutMs: options.connectionTimeoutMs ?? 3_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      retries: Math.max(0, options.retries ?? 5),
      acks: -1,
      compression,
      gzipLevel: options.gzipLevel ?? GZIP_LEVELS.default,
      allowAutoTopicCreation: true,
      logger: this.#logger,
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
    let partitions: number;
    try {
      partitions = await this.#producer.partitionCount(this.#topic);
    } catch (err) {
      throw this.#wrap(err, 'connecting');
    }
    let deadPartitions = -1;
    let inFlight: Promise<void> | null = null;
    let chunk = this.#newChunk(0);
    const flush = async (): Promise<void> => {
      // One request in flight: the previous one is acknowledged before this one goes out.
      if (inFlight !== null) await inFlight;
      const sending = this.#send(chunk);
      sending.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
      inFlight = sending;
      chunk = this.#newChunk(this.#sets[0] === chunk.set ? 1 : 0);
    };
    try {
      const fields = this.#fields;
      for (let i = first; i < records.length; i++) {
        const { payload, sequence } = records[i]!;
        const native = this.#format === 'native' && scanNativeEvent(payload, fields);
        const built = native ? null : buildKafkaMessage(payload, this.#format, this.#ocsf);
        const size =
          built?.kind === 'event' && typeof built.value === 'string'
            ? Buffer.byteLength(built.value)
            : payload.length;
        let topic = this.#topic;
        let partition: number;
        if (native) {
          partition = partitionOfKey(payload, partitions, fields.sessionStart, fields.sessionEnd);
        } else if (built!.kind === 'event') {
          partition = this.#producer.partitionOf((built as KafkaEventMessage).key, partitions);
        } else {
          topic = this.#deadLetterTopic;
          if (deadPartitions < 0) {
            try {
              deadPartitions = await this.#producer.partitionCount(topic);
            } catch (err) {
              throw this.#wrap(err, 'connecting', topic);
            }
          }
          partition = this.#producer.partitionOf(null, deadPartitions);
        }
        let batch = chunk.set.batch(topic, partition);
        const full =
          chunk.bytes + size > this.#maxRequestBytes ||
          batch.byteLength + size + RECORD_OVERHEAD > this.#maxBatchBytes;
        if (full && chunk.lastSequence >= 0) {
          await flush();
          batch = chunk.set.batch(topic, partition);
        }
        if (native) {
          appendNative(batch, payload, fields);
          chunk.events++;
        } else if (built!.kind === 'event') {
          appendBuilt(batch, built as KafkaEventMessage, size);
          chunk.events++;
        } else {
          const reason = (built as KafkaDeadLetter).reason;
          this.#logger.warn(
            { sink: this.name, sequence, reason },
            'spooled record is not a publishable event; sending it to the dead-letter topic',
          );
          appendDeadLetter(batch, payload, sequence, reason);
          chunk.dead++;
        }
        chunk.bytes += size;
        chunk.lastSequence = sequence;
      }
      await flush();
      await inFlight;
    } catch (err) {
      // Nothing may still be sending from a set the next delivery clears and refills.
      if (inFlight !== null) await Promise.allSettled([inFlight]);
      throw err;
    }
  }

  /** Closes the producer; later deliveries fail. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#producer.close();
  }

  #newChunk(index: 0 | 1): Chunk {
    const set = this.#sets[index];
    set.clear();
    return { set, events: 0, dead: 0, bytes: 0, lastSequence: -1 };
  }

  async #send(chunk: Chunk): Promise<void> {
    let requests: number;
    try {
      requests = (await this.#producer.send(chunk.set)).requests;
    } catch (err) {
      throw this.#wrap(err, 'sending');
    }
    this.#requests += requests;
    this.#sent += chunk.events;
    this.#deadLettered += chunk.dead;
    this.#highWaterMark = chunk.lastSequence;
  }

  #wrap(err: unknown, doing: 'connecting' | 'sending', topic = this.#topic): KafkaSinkError {
    const detail = err instanceof Error ? err.message : String(err);
    const fail = (failure: KafkaSinkFailure, summary: string): KafkaSinkError =>
      new KafkaSinkError(
        failure,
        `Kafka at ${this.#brokers} (topic ${topic}): ${summary} while ${doing}: ${detail}`,
        { cause: err },
      );
    if (!(err instanceof KafkaClientError)) return fail('rejected', 'delivery failed');
    switch (err.failure) {
      case 'auth': {
        const code = err.errorCode;
        const authorization = code === 29 || code === 31 || code === 53;
        return fail(
          'auth',
          authorization
            ? `access refused (${kafkaErrorName(code)})`
            : `authentication failed (SASL ${this.#saslMechanism ?? 'not configured'})`,
        );
      }
      case 'timeout':
        return fail('timeout', 'request timed out');
      case 'unreachable':
      case 'closed':
        return fail('unreachable', 'no broker reachable');
      case 'broker':
        return fail(
          'rejected',
          err.errorCode === null
            ? 'delivery failed'
            : `the broker answered ${kafkaErrorName(err.errorCode)}`,
        );
      case 'malformed':
      case 'unsupported':
      case 'producer-closed':
        return fail('rejected', 'delivery failed');
    }
  }
}

/** Appends a natively encoded event: key and header values copied from the JSON's front. */
function appendNative(batch: RecordBatchBuilder, payload: Buffer, f: NativeEventFields): void {
  batch.beginRecord(Math.floor(f.timeUs / 1000), payload.length + RECORD_OVERHEAD);
  batch.bytesField(payload, f.sessionStart, f.sessionEnd);
  batch.bytesField(payload);
  batch.headerCount(4);
  batch.bytesField(HEADER_EVENT_ID);
  batch.bytesField(payload, f.idStart, f.idEnd);
  batch.bytesField(HEADER_SCHEMA_VERSION);
  batch.bytesField(payload, f.schemaStart, f.schemaEnd);
  batch.bytesField(HEADER_EVENT_TYPE);
  batch.bytesField(payload, f.typeStart, f.typeEnd);
  batch.bytesField(HEADER_FORMAT);
  batch.bytesField(FORMAT_NATIVE);
  batch.endRecord();
}

/** Appends a message built by {@link buildKafkaMessage} (OCSF, or native JSON written otherwise). */
function appendBuilt(batch: RecordBatchBuilder, message: KafkaEventMessage, size: number): void {
  batch.beginRecord(Number(message.timestamp), size + RECORD_OVERHEAD);
  batch.stringField(message.key);
  if (typeof message.value === 'string') batch.stringField(message.value);
  else batch.bytesField(message.value);
  const names = Object.keys(message.headers);
  batch.headerCount(names.length);
  for (const name of names) {
    batch.stringField(name);
    batch.stringField(message.headers[name]!);
  }
  batch.endRecord();
}

/** Appends a record that is not an event, unchanged, with why and its spool sequence. */
function appendDeadLetter(
  batch: RecordBatchBuilder,
  payload: Buffer,
  sequence: number,
  reason: string,
): void {
  batch.beginRecord(Date.now(), payload.length + RECORD_OVERHEAD);
  batch.nullField();
  batch.bytesField(payload);
  batch.headerCount(2);
  batch.stringField(KAFKA_HEADERS.error);
  batch.stringField(reason);
  batch.stringField(KAFKA_HEADERS.spoolSequence);
  batch.stringField(String(sequence));
  batch.endRecord();
}
