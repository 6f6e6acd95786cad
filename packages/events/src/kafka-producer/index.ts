// A lean Kafka producer client: the wire protocol and record batches, written here (see README.md).
export { murmur2, partitionOfKey, partitionOfStringKey } from './murmur2-partition.js';
export {
  COMPRESSION_ATTRIBUTE,
  RECORD_BATCH_HEADER_BYTES,
  RecordBatchBuilder,
  type ProducerRecord,
  type RecordBatchProducer,
  type RecordCompression,
} from './record-batch-builder.js';
export { compressRecords, GZIP_LEVELS } from './compress-records.js';
export { ProduceSet, type ProduceSetBatch } from './produce-set.js';
export { KAFKA_APIS, type ApiVersionRange, type KafkaApi } from './kafka-apis.js';
export { KafkaClientError, type KafkaClientFailure } from './kafka-client-error.js';
export { kafkaErrorName } from './kafka-error-codes.js';
export {
  KafkaConnection,
  type KafkaConnectionOptions,
  type KafkaSasl,
} from './kafka-connection.js';
export { KafkaProducer, type KafkaProducerOptions, type ProduceSummary } from './kafka-producer.js';
