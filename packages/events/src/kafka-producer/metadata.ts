import { ProtocolWriter } from './protocol-writer.js';
import type { ProtocolReader } from './protocol-reader.js';

/** A broker of the cluster, from a Metadata response. */
export interface MetadataBroker {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
}

/** A partition's state, from a Metadata response. */
export interface MetadataPartition {
  readonly errorCode: number;
  readonly partition: number;
  /** The leader's node id; -1 while there is none. */
  readonly leader: number;
}

/** A topic's state, from a Metadata response. */
export interface MetadataTopic {
  readonly errorCode: number;
  readonly name: string;
  readonly partitions: readonly MetadataPartition[];
}

/** Metadata response (v5–v8), the parts a producer needs. */
export interface MetadataResponse {
  readonly brokers: readonly MetadataBroker[];
  readonly topics: readonly MetadataTopic[];
}

/**
 * Metadata request (v5–v8) for `topics`; with `allowAutoTopicCreation` the broker creates a
 * missing topic when its `auto.create.topics.enable` allows.
 */
export function encodeMetadataRequest(
  version: number,
  topics: readonly string[],
  allowAutoTopicCreation: boolean,
): Buffer {
  const writer = new ProtocolWriter();
  writer.int32(topics.length);
  for (const topic of topics) writer.string(topic);
  writer.bool(allowAutoTopicCreation);
  if (version >= 8) {
    writer.bool(false); // include cluster authorized operations
    writer.bool(false); // include topic authorized operations
  }
  return writer.take();
}

function readInt32s(reader: ProtocolReader, what: string): void {
  reader.array(what, 4, (r) => r.int32(what));
}

export function decodeMetadataResponse(version: number, reader: ProtocolReader): MetadataResponse {
  reader.int32('throttle time');
  const brokers = reader.array('brokers', 10, (r) => {
    const nodeId = r.int32('node id');
    const host = r.string('broker host');
    const port = r.int32('broker port');
    r.nullableString('broker rack');
    return { nodeId, host, port };
  });
  reader.nullableString('cluster id');
  reader.int32('controller id');
  const topics = reader.array('topics', 12, (r) => {
    const errorCode = r.int16('topic error code');
    const name = r.string('topic name');
    r.bool('is internal');
    const partitions = r.array('partitions', 22, (p) => {
      const partitionError = p.int16('partition error code');
      const partition = p.int32('partition index');
      const leader = p.int32('leader id');
      if (version >= 7) p.int32('leader epoch');
      readInt32s(p, 'replica nodes');
      readInt32s(p, 'isr nodes');
      readInt32s(p, 'offline replicas');
      return { errorCode: partitionError, partition, leader };
    });
    if (version >= 8) r.int32('topic authorized operations');
    return { errorCode, name, partitions };
  });
  if (version >= 8) reader.int32('cluster authorized operations');
  return { brokers, topics };
}
