export type { CatalogRelation, LineageCatalog, RelationKind } from './lineage-catalog.js';
export type {
  ColumnSource,
  CopyOutOptions,
  Derivation,
  LineageOutcome,
  LineageResult,
  OutputColumn,
  ShapingClause,
  ShapingUse,
  WrittenColumn,
} from './lineage-result.js';
export {
  traceLineage,
  traceLineageEach,
  type LineageListOutcome,
  type TraceLineageOptions,
} from './trace-lineage.js';
