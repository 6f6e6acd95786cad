import type { KeyObject } from 'node:crypto';
import { PortcullisError } from '@portcullis/core';
import { ContentDetector, type ContentDetectorOptions } from './content-detector.js';
import { createMasker, type Masker } from './create-masker.js';
import type { MaskAction } from './mask-style.js';

/** A column's wire format and type, as RowDescription (or CopyOutResponse) tells them. */
export interface ColumnType {
  /** Type OID; 0 when unknown. */
  readonly typeOid: number;
  /** 0 text, 1 binary. */
  readonly format: 0 | 1;
}

/**
 * What to mask in one result set: plain data, so it can be posted to a worker as it is and
 * compiled there with {@link compileRowPlan}.
 */
export interface RowPlanSpec {
  /** Action per column index; `null` leaves the column alone. One entry per column. */
  readonly actions: readonly (MaskAction | null)[];
  /** Format and type per column; text format, unknown type when not given. */
  readonly columns?: readonly ColumnType[];
  /** HMAC key for `hash` styles (rules and detectors). */
  readonly hashKey?: Uint8Array | KeyObject;
  /** Detector options for `detect` columns (defaults when not given). */
  readonly detector?: Omit<ContentDetectorOptions, 'hashKey'>;
}

/** Type OIDs whose binary form is the text itself (jsonb after a version byte). */
export const TEXT_LIKE_OIDS: ReadonlySet<number> = new Set([
  0, // unknown to the plan
  19, // name
  25, // text
  114, // json
  142, // xml
  705, // unknown
  1042, // bpchar
  1043, // varchar
  3802, // jsonb
]);

/**
 * Built-in types whose text form cannot hold free text (numbers, times, booleans, uuids,
 * bytea's hex): `detect` skips them, since a detector could only misfire there and a masked
 * value would no longer parse as its type. A column rule still masks them.
 */
export const NON_TEXT_OIDS: ReadonlySet<number> = new Set([
  16, 17, 20, 21, 23, 26, 28, 700, 701, 790, 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950,
]);

const JSON_OID = 114;
const JSONB_OID = 3802;

/** How one column is handled: the plan's compiled form. */
export const enum Op {
  None,
  /** Mask the text with the column's masker. */
  Rule,
  /** json text: mask, then write as a JSON string so the value stays JSON. */
  RuleJson,
  /** Binary jsonb: version byte, then as {@link Op.RuleJson}. */
  RuleJsonb,
  /** Becomes NULL (the `null` style, or a rule on a binary column that is not text). */
  Null,
  /** Run the detectors over the text. */
  Detect,
  /** Detect in JSON text, keeping it valid JSON. */
  DetectJson,
  /** Detect in binary jsonb (after the version byte). */
  DetectJsonb,
}

/**
 * A compiled {@link RowPlanSpec}: per column an operation, a masker and the shared detector.
 * Holds small scratch state for the rewriters, so one plan serves one thread at a time (the
 * rewriters are synchronous, so that is any number of calls in sequence).
 */
export class RowPlan {
  /** Columns every row of the result set must have. */
  readonly columnCount: number;
  /** Operation per column. */
  readonly ops: Uint8Array;
  /** Masker per column (rule columns only). */
  readonly maskers: readonly (Masker | null)[];
  /** The detector of `detect` columns; null when there are none. */
  readonly detector: ContentDetector | null;
  /** Highest column index with an operation; -1 when the plan masks nothing. */
  readonly lastActive: number;
  /** Scratch: which columns had a value changed in the current call. */
  readonly hit: Uint8Array;
  /**
   * Per `detect` column, the detector that claimed the whole of its last value (see
   * {@link ContentDetector.covering}), tried first on the next one; -1 for none.
   */
  readonly hints: Int8Array;

  /** @internal use {@link compileRowPlan}. */
  constructor(
    ops: Uint8Array,
    maskers: readonly (Masker | null)[],
    detector: ContentDetector | null,
  ) {
    this.columnCount = ops.length;
    this.ops = ops;
    this.maskers = maskers;
    this.detector = detector;
    let last = -1;
    for (let i = 0; i < ops.length; i++) if (ops[i] !== Op.None) last = i;
    this.lastActive = last;
    this.hit = new Uint8Array(ops.length);
    this.hints = new Int8Array(ops.length).fill(-1);
  }

  /** Columns hit in the current call, in order; clears the scratch. */
  takeHits(): number[] {
    const out: number[] = [];
    const hit = this.hit;
    for (let i = 0; i <= this.lastActive; i++) {
      if (hit[i] === 1) {
        out.push(i);
        hit[i] = 0;
      }
    }
    return out;
  }

  /**
   * As {@link RowPlan.takeHits}, but the array is frozen and shared with the previous call's
   * when the columns are the same (frame by frame they usually are), so a result costs no
   * allocation.
   */
  takeSharedHits(): readonly number[] {
    const hit = this.hit;
    const last = this.#lastHits;
    let same = true;
    let n = 0;
    for (let i = 0; i <= this.lastActive; i++) {
      if (hit[i] === 1) {
        if (last[n] !== i) same = false;
        n++;
      }
    }
    if (same && n === last.length) {
      for (let i = 0; i <= this.lastActive; i++) hit[i] = 0;
      return last;
    }
    this.#lastHits = Object.freeze(this.takeHits());
    return this.#lastHits;
  }

  #lastHits: readonly number[] = Object.freeze([]);
}

/**
 * Compiles a plan. Rules mask text-format values of any type as text (pick `null` or
 * `fixed-format` for typed columns whose clients parse them); binary values of text-like types
 * ({@link TEXT_LIKE_OIDS}) are masked as text; a rule on any other binary column turns its
 * values into NULL, since no masked form of, say, a binary int8 exists. json and jsonb values
 * masked by a rule become a JSON string of the masked text. `detect` runs on text-format values
 * except {@link NON_TEXT_OIDS}, and on binary text-like values.
 *
 * `detector` lets plans share one compiled detector; otherwise one is built from the spec.
 * Invalid styles or keys throw `PCL_ERR_CONFIG_INVALID`.
 */
export function compileRowPlan(spec: RowPlanSpec, detector?: ContentDetector): RowPlan {
  const count = spec.actions.length;
  if (spec.columns !== undefined && spec.columns.length !== count) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_INVALID',
      `masking plan has ${count} actions for ${spec.columns.length} columns`,
    );
  }
  const keyed = spec.hashKey === undefined ? {} : { hashKey: spec.hashKey };
  const ops = new Uint8Array(count);
  const maskers: (Masker | null)[] = [];
  const cache = new Map<string, Masker>();
  let needsDetector = false;
  for (let i = 0; i < count; i++) {
    const action = spec.actions[i] ?? null;
    const column = spec.columns?.[i] ?? { typeOid: 0, format: 0 };
    const oid = column.typeOid;
    const json = oid === JSON_OID || oid === JSONB_OID;
    const binaryJsonb = column.format === 1 && oid === JSONB_OID;
    const textual = column.format === 0 || TEXT_LIKE_OIDS.has(oid);
    let masker: Masker | null = null;
    let op = Op.None;
    if (action === null) {
      op = Op.None;
    } else if (action.kind === 'detect') {
      if (column.format === 0 ? !NON_TEXT_OIDS.has(oid) : textual) {
        op = binaryJsonb ? Op.DetectJsonb : json ? Op.DetectJson : Op.Detect;
        needsDetector = true;
      }
    } else if (action.kind === 'null' || !textual) {
      op = Op.Null;
    } else {
      const key = JSON.stringify(action);
      masker = cache.get(key) ?? createMasker(action, keyed);
      cache.set(key, masker);
      op = binaryJsonb ? Op.RuleJsonb : json ? Op.RuleJson : Op.Rule;
    }
    ops[i] = op;
    maskers.push(masker);
  }
  const compiled = needsDetector
    ? (detector ?? new ContentDetector({ ...spec.detector, ...keyed }))
    : null;
  return new RowPlan(ops, maskers, compiled);
}
