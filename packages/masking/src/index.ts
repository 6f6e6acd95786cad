export {
  ContentDetector,
  DEFAULT_DETECTOR_STYLES,
  type ContentDetectorOptions,
  type DetectedSpan,
  type MaskedText,
} from './content-detector.js';
export { countCodePoints } from './count-code-points.js';
export { createMasker, type Masker, type MaskerOptions } from './create-masker.js';
export { DETECTOR_KINDS, type DetectorKind } from './detector-kind.js';
export { MIN_HASH_KEY_BYTES } from './hmac-sha256.js';
export {
  DEFAULT_HASH_LENGTH,
  DEFAULT_HASH_PREFIX,
  DEFAULT_PARTIAL_KEEP,
  DEFAULT_REDACT_MARKER,
  type MaskAction,
  type MaskStyle,
  type MaskStyleKind,
} from './mask-style.js';
export {
  MASKED_NOTICE_FIELDS,
  maskNoticeFields,
  type NoticeRewrite,
} from './mask-notice-fields.js';
export {
  compileCopyPlan,
  rewriteCopyData,
  type CopyDataOptions,
  type CopyDataRewrite,
  type CopyPlan,
  type CopyPlanSpec,
} from './rewrite-copy-data.js';
export {
  rewriteDataRow,
  rewriteDataRows,
  type DataRowRewrite,
  type DataRowsRewrite,
} from './rewrite-data-row.js';
export {
  compileRowPlan,
  NON_TEXT_OIDS,
  RowPlan,
  TEXT_LIKE_OIDS,
  type ColumnType,
  type RowPlanSpec,
} from './row-plan.js';
