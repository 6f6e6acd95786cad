import { ProtocolWriter } from './protocol-writer.js';
import type { ProtocolReader } from './protocol-reader.js';

/** One partition's record batch in a Produce request. */
export interface ProducePartitionData {
  readonly partition: number;
  /** The batch as chunks (a compressed batch is its header, then the compressed records). */
  readonly batch: readonly Buffer[];
}

/** One topic's partitions in a Produce request. */
export interface ProduceTopicData {
  readonly topic: string;
  readonly partitions: readonly ProducePartitionData[];
}

/** A partition's answer in a Produce response. */
export interface ProducePartitionResponse {
  readonly partition: number;
  readonly errorCode: number;
  readonly baseOffset: bigint;
}

/** Produce response (v7). */
export interface ProduceResponse {
  readonly topics: readonly {
    readonly topic: string;
    readonly partitions: readonly ProducePartitionResponse[];
  }[];
}

/**
 * Produce request (v7) as chunks: the small framing parts are written here and the batches'
 * own buffers go between them, so a megabyte of records is never copied into the request.
 */
export function encodeProduceRequest(
  acks: number,
  timeoutMs: number,
  topics: readonly ProduceTopicData[],
): Buffer[] {
  const writer = new ProtocolWriter();
  const chunks: Buffer[] = [];
  writer.nullableString(null).int16(acks).int32(timeoutMs).int32(topics.length);
  for (const { topic, partitions } of topics) {
    writer.string(topic).int32(partitions.length);
    for (const { partition, batch } of partitions) {
      let size = 0;
      for (const chunk of batch) size += chunk.length;
      writer.int32(partition).int32(size);
      chunks.push(writer.take(), ...batch);
    }
  }
  const tail = writer.take();
  if (tail.length > 0) chunks.push(tail);
  return chunks;
}

export function decodeProduceResponse(reader: ProtocolReader): ProduceResponse {
  const topics = reader.array('topics', 6, (r) => ({
    topic: r.string('topic name'),
    partitions: r.array('partitions', 30, (p) => {
      const partition = p.int32('partition index');
      const errorCode = p.int16('error code');
      const baseOffset = p.int64('base offset');
      p.int64('log append time');
      p.int64('log start offset');
      return { partition, errorCode, baseOffset };
    }),
  }));
  reader.int32('throttle time');
  return { topics };
}
