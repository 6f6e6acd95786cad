// The event pipeline's public surface; each part exports from its own folder.
export {};
export * from './spool/index.js';
export * from './store/index.js';
export * from './sinks/index.js';
export * from './ingest/index.js';
export * from './kafka-producer/index.js';
export type { KafkaSinkSasl } from './sinks/kafka-sink.js';
