export {
  KafkaIngester,
  type IngestSink,
  type KafkaIngesterOptions,
  type KafkaIngesterStats,
} from './kafka-ingester.js';
export {
  assembleIngestChunks,
  classifyIngestMessage,
  nextOffset,
  type IngestChunk,
  type IngestInvalid,
  type IngestMessage,
  type IngestMessageKind,
} from './ingest-batch.js';
