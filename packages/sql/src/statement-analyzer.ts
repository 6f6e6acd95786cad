import { analyzeStatement, DEFAULT_MAX_STATEMENT_BYTES } from './analyze-statement.js';
import { LruCache } from './lru-cache.js';
import type { AnalyzeResult } from './statement-analysis.js';

/** Options of {@link StatementAnalyzer}. */
export interface StatementAnalyzerOptions {
  /** Text longer than this many UTF-8 bytes is refused unparsed (`too-large`). Default 1 MiB. */
  readonly maxStatementBytes?: number;
  /** How many distinct texts the cache keeps, least recently used evicted first. Default 10,000; 0 turns caching off. */
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

/**
 * Synchronous, cached statement analysis for the gateway's data path. The same text a second
 * time costs one cache lookup; results are frozen, so callers share them safely.
 *
 * `loadSqlParser()` must have finished before the first `analyze()` of a text not yet cached.
 */
export class StatementAnalyzer {
  readonly #maxStatementBytes: number;
  readonly #cache: LruCache<string, AnalyzeResult>;

  constructor(options: StatementAnalyzerOptions = {}) {
    this.#maxStatementBytes = count(
      'maxStatementBytes',
      options.maxStatementBytes,
      DEFAULT_MAX_STATEMENT_BYTES,
    );
    this.#cache = new LruCache(
      count('cacheEntries', options.cacheEntries, DEFAULT_CACHE_ENTRIES),
      count('cacheBytes', options.cacheBytes, DEFAULT_CACHE_BYTES),
    );
  }

  /** Analyzes `text`, or returns the cached result for the same text. Never throws for any text. */
  analyze(text: string): AnalyzeResult {
    const cached = this.#cache.get(text);
    if (cached !== undefined) return cached;
    const result = analyzeStatement(text, { maxStatementBytes: this.#maxStatementBytes });
    // Oversized text is refused before any work; caching it would only hold the big key.
    if (result.ok || result.reason !== 'too-large') {
      const redacted = result.ok ? result.analysis.redactedText.length : 0;
      this.#cache.set(text, result, 2 * (text.length + redacted) + ENTRY_OVERHEAD_BYTES);
    }
    return result;
  }

  /** How many texts the cache holds. */
  get cacheSize(): number {
    return this.#cache.size;
  }
}

function count(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
  return value;
}
