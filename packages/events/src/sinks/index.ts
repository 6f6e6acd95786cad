export {
  BULK_BATCHES,
  CLICKHOUSE_BATCHES,
  STREAM_BATCHES,
  SinkRunner,
  type BatchSink,
  type SinkRunnerOptions,
  type SinkRunnerStats,
} from './sink-runner.js';
export {
  ClickHouseSink,
  ClickHouseSinkError,
  LEGACY18_MIN_CLICKHOUSE_VERSION,
  MODERN_MIN_CLICKHOUSE_VERSION,
  classifyClickHouseFailure,
  legacy18TableDdl,
  planInserts,
  splitAt,
  type ClickHouseFailure,
  type ClickHouseFailureKind,
  type ClickHouseSchemaFlavour,
  type ClickHouseSinkOptions,
  type ClickHouseSinkStats,
} from './clickhouse-sink.js';
export { DeadLetterFile, type DeadLetterEntry } from './dead-letter-file.js';
export {
  buildKafkaMessage,
  KAFKA_HEADERS,
  KafkaSink,
  KafkaSinkError,
  type KafkaDeadLetter,
  type KafkaEventMessage,
  type KafkaSinkCompression,
  type KafkaSinkFailure,
  type KafkaSinkFormat,
  type KafkaSinkOptions,
  type KafkaSinkStats,
} from './kafka-sink.js';
export * from '../ocsf/index.js';
