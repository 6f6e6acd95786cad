import { ProtocolWriter } from './protocol-writer.js';
import type { ProtocolReader } from './protocol-reader.js';

/** InitProducerId response (v1). */
export interface InitProducerIdResponse {
  readonly errorCode: number;
  readonly producerId: bigint;
  readonly producerEpoch: number;
}

/**
 * InitProducerId request (v1) of an idempotent producer: no transactional id, so the
 * transaction timeout is unused (the Java client's default is sent).
 */
export function encodeInitProducerIdRequest(): Buffer {
  return new ProtocolWriter(8).nullableString(null).int32(60_000).take();
}

export function decodeInitProducerIdResponse(reader: ProtocolReader): InitProducerIdResponse {
  reader.int32('throttle time');
  const errorCode = reader.int16('error code');
  const producerId = reader.int64('producer id');
  const producerEpoch = reader.int16('producer epoch');
  return { errorCode, producerId, producerEpoch };
}
