import { analyzeStatement, DEFAULT_MAX_STATEMENT_BYTES } from './analyze-statement.js';
import { literalShape } from './literal-shape.js';
import { LruCache } from './lru-cache.js';
import type { AnalyzeResult, StatementAnalysis } from './statement-analysis.js';

/** Options of {@link StatementAnalyzer}. */
export interface StatementAnalyzerOptions {
  /** Text longer than this many UTF-8 bytes is refused unparsed (`too-large`). Default 1 MiB. */
  readonly maxStatementBytes?: number;
  /** How many analyses each cache (by text, by literal shape) keeps, least recently used evicted first. Default 10,000; 0 turns caching off. */
  readonly cacheEntries?: number;
  /**
   * A bound on the memory the cache holds, in bytes, as estimated from the texts it keeps (a
   * text and its redacted form, two bytes a character). Without it, 10,000 entries of 1 MiB
   * statements could hold gigabytes. Default 64 MiB.
   */
  readonly cacheBytes?: number;
}

/** The default number of cached texts. */
export const DEFAULT_CACHE_ENTRIES = 10_000;
/** The default bound on cached bytes. */
export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;

/** Per-entry bookkeeping beyond the texts: the result objects, tables, the Map slot. */
const ENTRY_OVERHEAD_BYTES = 512;

/** Longest text whose literal shape is computed (a second cache key; see `analyze`). */
const MAX_SHAPED_TEXT = 64 * 1024;

/** Kinds whose analysis never depends on a literal's value (SET, EXPLAIN, COPY options can). */
const SHAPE_KINDS: ReadonlySet<string> = new Set(['select', 'insert', 'update', 'delete', 'merge']);

/**
 * True when every statement of this shape analyses alike: plain DML, with no call whose
 * literal arguments decide a flag (`set_config('role', …)`).
 */
function shapeSafe(analysis: StatementAnalysis): boolean {
  return (
    SHAPE_KINDS.has(analysis.kind) && !analysis.functions.some((f) => f.endsWith('set_config'))
  );
}

/**
 * Synchronous, cached statement analysis for the gateway's data path. The same text a second
 * time costs one cache lookup; results are frozen, so callers share them safely.
 *
 * `loadSqlParser()` must have finished before the first `analyze()` of a text not yet cached.
 */
export class StatementAnalyzer {
  readonly #maxStatementBytes: number;
  readonly #cache: LruCache<string, AnalyzeResult>;
  /** Results by literal shape, for statements that inline their values (`WHERE id = 42`). */
  readonly #shapes: LruCache<string, AnalyzeResult>;

  constructor(options: StatementAnalyzerOptions = {}) {
    this.#maxStatementBytes = count(
      'maxStatementBytes',
      options.maxStatementBytes,
      DEFAULT_MAX_STATEMENT_BYTES,
    );
    const entries = count('cacheEntries', options.cacheEntries, DEFAULT_CACHE_ENTRIES);
    const bytes = count('cacheBytes', options.cacheBytes, DEFAULT_CACHE_BYTES);
    this.#cache = new LruCache(entries, bytes);
    this.#shapes = new LruCache(entries, bytes);
  }

  /** Analyzes `text`, or returns the cached result for the same text. Never throws for any text. */
  analyze(text: string): AnalyzeResult {
    const cached = this.#cache.get(text);
    if (cached !== undefined) return cached;
    // Statements that inline their values differ only in literals: one parse per shape. The
    // shape is only trusted when every literal is plain (see literalShape).
    const shape = text.length <= MAX_SHAPED_TEXT ? literalShape(text) : null;
    if (shape !== null) {
      const sameShape = this.#shapes.get(shape);
      if (sameShape !== undefined) return sameShape;
    }
    const result = analyzeStatement(text, { maxStatementBytes: this.#maxStatementBytes });
    // Oversized text is refused before any work; caching it would only hold the big key.
    if (result.ok || result.reason !== 'too-large') {
      const redacted = result.ok ? result.analysis.redactedText.length : 0;
      const size = 2 * (text.length + redacted) + ENTRY_OVERHEAD_BYTES;
      if (shape !== null && result.ok && shapeSafe(result.analysis))
        this.#shapes.set(shape, result, size);
      else this.#cache.set(text, result, size);
    }
    return result;
  }

  /** How many analyses the caches hold (by text, and by literal shape). */
  get cacheSize(): number {
    return this.#cache.size + this.#shapes.size;
  }
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}
