// kafkajs's own record-batch decoder and CRC-32C, loaded from its sources (the package has no
// `exports` map, so they resolve) and typed here: the oracle the encoder's tests decode with.
import { createRequire } from 'node:module';
import { Partitioners, type PartitionerArgs } from 'kafkajs';

const require = createRequire(import.meta.url);

/** A record as kafkajs decodes it. */
export interface KafkaJsRecord {
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, Buffer | Buffer[] | null>;
}

/** A record batch as kafkajs decodes it. */
export interface KafkaJsRecordBatch {
  firstOffset: string;
  firstTimestamp: string;
  maxTimestamp: string;
  partitionLeaderEpoch: number;
  lastOffsetDelta: number;
  producerId: string;
  producerEpoch: number;
  firstSequence: number;
  records: KafkaJsRecord[];
}

type DecoderClass = new (buffer: Buffer) => unknown;
const Decoder = require('kafkajs/src/protocol/decoder') as DecoderClass;
const decodeBatch = require('kafkajs/src/protocol/recordBatch/v0/decoder') as (
  decoder: unknown,
) => Promise<KafkaJsRecordBatch>;

/** Decodes one record batch (the bytes from its base offset to its end) with kafkajs. */
export function decodeWithKafkaJs(batch: Buffer): Promise<KafkaJsRecordBatch> {
  return decodeBatch(new Decoder(batch));
}

/** kafkajs's CRC-32C (unsigned). */
export const kafkaJsCrc32c = require('kafkajs/src/protocol/recordBatch/crc32C') as (
  bytes: Buffer,
) => number;

const defaultPartitioner = Partitioners.DefaultPartitioner();

/** The partition kafkajs's DefaultPartitioner picks for `key` among `partitions` (the oracle). */
export function kafkajsPartition(key: string | Buffer, partitions: number): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: 1,
    partitionErrorCode: 0,
    replicas: [1],
    isr: [1],
  }));
  return defaultPartitioner({
    topic: 't',
    partitionMetadata,
    message: { key, value: null },
  } as PartitionerArgs);
}
