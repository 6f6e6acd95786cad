import type { SpoolRecord } from '../spool/spool-reader.js';
import { buildKafkaMessage, KAFKA_HEADERS } from '../sinks/kafka-sink.js';

/** The parts of a consumed Kafka message the ingester looks at (a kafkajs `KafkaMessage` fits). */
export interface IngestMessage {
  /** The message's offset in its partition, as kafkajs gives it (a decimal string). */
  readonly offset: string;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>>;
}

/** A message that is not an event in the native format; it goes to the dead-letter file. */
export interface IngestInvalid {
  /** The message's offset (what the dead-letter entry records as `sequence`). */
  readonly offset: number;
  readonly reason: string;
  readonly payload: Buffer;
}

/**
 * One insert's worth of a partition's messages, with the offset to commit once it is stored:
 * `records` go to the ClickHouse sink (their `sequence` is the Kafka offset), `invalid` to the
 * dead-letter file, and `ocsf` counts the OCSF messages left out.
 */
export interface IngestChunk {
  readonly records: SpoolRecord[];
  readonly invalid: IngestInvalid[];
  readonly ocsf: number;
  /** The offset of the last message this chunk covers (stored, dead-lettered or skipped). */
  readonly lastOffset: string;
}

/** What one message is for the ingester. */
export type IngestMessageKind =
  | { readonly kind: 'event' }
  | { readonly kind: 'ocsf' }
  | { readonly kind: 'invalid'; readonly reason: string };

function header(message: IngestMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

/**
 * Sorts a message: `ocsf` when its `format` header says so (the ClickHouse table holds native
 * events; an OCSF copy of the same event is skipped, not stored twice), `event` when it is a
 * native event (header `native` or none, and a JSON object with the fields a message is keyed
 * by: `schema`, `id`, `type`, `timeUs`, `sessionId`), `invalid` with the reason otherwise.
 */
export function classifyIngestMessage(message: IngestMessage): IngestMessageKind {
  const format = header(message, KAFKA_HEADERS.format);
  if (format === 'ocsf') return { kind: 'ocsf' };
  if (format !== undefined && format !== 'native') {
    return { kind: 'invalid', reason: `unknown format header ${JSON.stringify(format)}` };
  }
  if (message.value === null || message.value.length === 0) {
    return { kind: 'invalid', reason: 'no value' };
  }
  const built = buildKafkaMessage(message.value, 'native');
  return built.kind === 'event' ? { kind: 'event' } : { kind: 'invalid', reason: built.reason };
}

/**
 * Splits a partition's messages (in offset order) into chunks of at most `maxRows` events each.
 * Skipped and invalid messages ride with the chunk they fall in (the last chunk takes those after
 * the last event), so committing each chunk's `lastOffset + 1` after it is stored moves past
 * every message exactly once. An empty input gives no chunks.
 */
export function assembleIngestChunks(
  messages: readonly IngestMessage[],
  maxRows: number,
): IngestChunk[] {
  if (!Number.isSafeInteger(maxRows) || maxRows < 1) {
    throw new RangeError('maxRows must be a whole number of at least 1');
  }
  const chunks: IngestChunk[] = [];
  let records: SpoolRecord[] = [];
  let invalid: IngestInvalid[] = [];
  let ocsf = 0;
  let lastOffset: string | null = null;
  for (const message of messages) {
    const kind = classifyIngestMessage(message);
    if (kind.kind === 'event' && records.length === maxRows && lastOffset !== null) {
      chunks.push({ records, invalid, ocsf, lastOffset });
      records = [];
      invalid = [];
      ocsf = 0;
    }
    if (kind.kind === 'event') {
      records.push({ sequence: Number(message.offset), payload: message.value! });
    } else if (kind.kind === 'ocsf') {
      ocsf++;
    } else {
      invalid.push({
        offset: Number(message.offset),
        reason: kind.reason,
        payload: message.value ?? Buffer.alloc(0),
      });
    }
    lastOffset = message.offset;
  }
  if (lastOffset !== null) {
    chunks.push({ records, invalid, ocsf, lastOffset });
  }
  return chunks;
}

/** The offset to commit after `offset` was handled: the next one to read. */
export function nextOffset(offset: string): string {
  return (BigInt(offset) + 1n).toString();
}
