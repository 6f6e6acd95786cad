import {
  LruCache,
  traceLineageEach,
  type AnalyzeResult,
  type LineageCatalog,
} from '@portcullis/sql';
import type { ColumnRules } from './column-rules.js';
import { maskingVerdict, unprovenLineage, type MaskingVerdict } from './masking-verdict.js';

/** What masking needs from a catalog snapshot. */
export interface VerdictCatalog {
  /** Changes whenever the snapshot is reloaded. */
  readonly generation: number;
  lineageCatalog(searchPath: readonly string[] | null): LineageCatalog;
}

/**
 * Verdicts shared by the sessions of one resource in a process. Statements that differ only in
 * literal values share the analyzer's result object (its literal-shape cache), so verdicts hang
 * off that object: a repeated statement costs two map lookups. A verdict that a literal decides
 * (`ORDER BY 2`) is kept by text instead.
 */
export class VerdictCache {
  readonly #byAnalysis = new WeakMap<object, Map<string, MaskingVerdict | null>>();
  readonly #byText: LruCache<string, MaskingVerdict>;

  constructor(entries = 10_000, bytes = 32 * 1024 * 1024) {
    this.#byText = new LruCache(entries, bytes);
  }

  /** The cached verdict; `compute` returns it with whether a literal decided it. */
  get(
    analysis: object,
    context: string,
    text: string,
    compute: () => { verdict: MaskingVerdict; literalDependent: boolean },
  ): MaskingVerdict {
    let perContext = this.#byAnalysis.get(analysis);
    const cached = perContext?.get(context);
    if (cached !== undefined && cached !== null) return cached;
    const textKey = `${context}\u0001${text}`;
    if (cached === null) {
      const byText = this.#byText.get(textKey);
      if (byText !== undefined) return byText;
    }
    const { verdict, literalDependent } = compute();
    if (perContext === undefined) {
      perContext = new Map();
      this.#byAnalysis.set(analysis, perContext);
    }
    if (literalDependent) {
      perContext.set(context, null);
      this.#byText.set(textKey, verdict, 2 * textKey.length + 512);
    } else {
      perContext.set(context, verdict);
    }
    return verdict;
  }
}

/** Options of a {@link SessionMasking}. */
export interface SessionMaskingOptions {
  readonly rules: ColumnRules;
  /** Content detectors scan columns no rule masks. */
  readonly detect: boolean;
  /** The resource's current catalog snapshot. */
  readonly catalog: () => VerdictCatalog;
  /** The session's search path (`current_schemas(true)`), read at login. */
  readonly searchPath: readonly string[];
  readonly trustedFunctions: readonly string[];
  readonly cache: VerdictCache;
  /** Told when a statement names a relation the snapshot lacks (it may be stale). */
  readonly onUnknownRelation?: () => void;
  /** Counts schema changes seen through the gateway (DDL); 0 when not tracked. */
  readonly schemaEpoch?: () => number;
}

/** Text that may change how unqualified names resolve (search_path, the role behind `$user`). */
const PATH_CHANGE = /search_path|\ball\b|\brole\b|authorization/i;

/**
 * Masking as one session sees it: the rules that apply to its person, the search path its
 * names resolve with, and the verdicts of its statements. Once a statement may have changed the
 * search path (SET, RESET, DISCARD, set_config…), the path is unknown to the gateway from then
 * on: an unqualified name then resolves only when exactly one schema holds it (see
 * CatalogSnapshot.lineageCatalog), otherwise the statement is refused and the person is told to
 * schema-qualify.
 */
export class SessionMasking {
  readonly #options: SessionMaskingOptions;
  #searchPath: readonly string[] | null;
  readonly #pathKey: string;
  readonly #contextKnownPath = { generation: -1, key: '' };
  readonly #contextUnknownPath = { generation: -1, key: '' };
  #validity: { atEpoch: number; pathKnown: boolean; holds: () => boolean } | null = null;

  constructor(options: SessionMaskingOptions) {
    this.#options = options;
    this.#searchPath = options.searchPath;
    this.#pathKey = options.searchPath.join('\u0000');
  }

  /** True when anything is masked for this session. */
  get active(): boolean {
    return this.#options.detect || !this.#options.rules.empty;
  }

  /**
   * Whether verdicts given now still hold later: a prepared statement is re-analysed by the
   * server when the search path or the schema changes, so masks computed before either change
   * no longer describe its rows. Names resolved under an unknown path resolve alike under any.
   */
  validity(): () => boolean {
    const epoch = this.#options.schemaEpoch ?? (() => 0);
    const atEpoch = epoch();
    const pathKnown = this.#searchPath !== null;
    // The same function while neither changes: a statement costs no new closure.
    const last = this.#validity;
    if (last !== null && last.atEpoch === atEpoch && last.pathKnown === pathKnown)
      return last.holds;
    const holds = pathKnown
      ? () => this.#searchPath !== null && epoch() === atEpoch
      : () => epoch() === atEpoch;
    this.#validity = { atEpoch, pathKnown, holds };
    return holds;
  }

  /**
   * The verdict cache's context key: the same string object while nothing in it changes, so a
   * repeated statement's lookup hashes nothing new (the rules' key can be long).
   */
  #context(generation: number, pathUnknown: boolean): string {
    const keys = pathUnknown ? this.#contextUnknownPath : this.#contextKnownPath;
    if (keys.generation === generation) return keys.key;
    const options = this.#options;
    const key = `${generation}\u0001${options.rules.key}\u0001${options.detect ? 1 : 0}\u0001${pathUnknown ? '?' : this.#pathKey}`;
    keys.generation = generation;
    keys.key = key;
    return key;
  }

  /** The search path unqualified names resolve with; null once unknown. */
  get searchPath(): readonly string[] | null {
    return this.#searchPath;
  }

  /** How the statements of `text` are masked, or why the text is refused. */
  verdict(text: string, analysis: AnalyzeResult): MaskingVerdict {
    if (!analysis.ok) {
      if (analysis.reason === 'empty') return { ok: true, statements: [] };
      return unprovenLineage('the PostgreSQL parser cannot read it');
    }
    const options = this.#options;
    const catalog = options.catalog();
    // A text that changes the path (`SET search_path = x; SELECT …`) is traced as if the path
    // were already unknown: its later statements run under the new one.
    const changesPath = mayChangePath(text, analysis);
    const path = changesPath ? null : this.#searchPath;
    const context = this.#context(catalog.generation, path === null);
    const verdict = options.cache.get(analysis, context, text, () => {
      const traced = traceLineageEach(text, catalog.lineageCatalog(path), {
        trustedFunctions: options.trustedFunctions,
      });
      if (!traced.ok) return { verdict: unprovenLineage(traced.reason), literalDependent: true };
      return {
        verdict: maskingVerdict(traced.statements, options.rules, options.detect),
        literalDependent: traced.statements.some((s) => s.dependsOnLiterals),
      };
    });
    if (changesPath) this.#searchPath = null;
    if (!verdict.ok && verdict.message.includes('unknown relation')) options.onUnknownRelation?.();
    if (!verdict.ok && path === null && /unknown relation "[^".]*"/.test(verdict.message)) {
      return {
        ...verdict,
        message: `${verdict.message} (this session changed its search_path, which the gateway cannot follow: schema-qualify the table, e.g. public.customers)`,
      };
    }
    return verdict;
  }
}

/** Whether running `text` may change how unqualified names resolve from then on. */
function mayChangePath(text: string, analysis: AnalyzeResult): boolean {
  if (!analysis.ok) return false;
  const { kind, functions } = analysis.analysis;
  const setting = kind === 'set' || kind === 'other' || kind === 'multi';
  return (setting && PATH_CHANGE.test(text)) || functions.some((f) => f.endsWith('set_config'));
}
