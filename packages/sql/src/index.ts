export {
  analyzeStatement,
  DEFAULT_MAX_STATEMENT_BYTES,
  type AnalyzeStatementOptions,
} from './analyze-statement.js';
export { literalShape } from './literal-shape.js';
export { loadSqlParser } from './load-sql-parser.js';
export { redactSql } from './redact-sql.js';
export * from './statement-analysis.js';
export * from './statement-analyzer.js';
export * from './lineage/index.js';
export { LruCache } from './lru-cache.js';
