export { crc32c } from './crc32c.js';
export {
  SEGMENT_FORMAT_VERSION,
  SEGMENT_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  segmentFileName,
} from './segment-format.js';
export {
  Spool,
  type SpoolCorruptionReport,
  type SpoolFullPolicy,
  type SpoolLag,
  type SpoolOptions,
  type SpoolWritev,
} from './spool.js';
export {
  SpoolReader,
  type SpoolBatch,
  type SpoolReaderOptions,
  type SpoolRecord,
} from './spool-reader.js';
export { SpoolEventSink, type SpoolEventSinkOptions } from './spool-event-sink.js';
