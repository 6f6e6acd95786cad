import {
  ContentDetector,
  compileCopyPlan,
  compileRowPlan,
  type ColumnType,
  type CopyPlan,
  type CopyPlanSpec,
  type DetectorKind,
  type MaskAction,
  type MaskStyle,
  type RowPlan,
  type RowPlanSpec,
} from '@portcullis/masking';
import { decodeRowDescription } from '@portcullis/protocol-pg';
import type { ColumnRules } from './column-rules.js';
import type { StatementMask } from './masking-verdict.js';

/** A result column as RowDescription (or the statement's last one) describes it. */
export interface ResultField {
  readonly name: string;
  /** Table OID and attribute number when the column is a plain table column, else 0. */
  readonly tableOid: number;
  readonly columnAttr: number;
  readonly typeOid: number;
  readonly format: number;
}

/** Where a table column lives, by OID and attribute number (the catalog snapshot answers). */
export type ColumnLocator = (
  tableOid: number,
  columnAttr: number,
) => { readonly schema: string; readonly table: string; readonly column: string } | null;

/** How the rows of one result are masked: compiled for inline use, plain data for a worker. */
export interface ResultPlan {
  /** Unique per compiled plan in this process: workers cache compiled plans by it. */
  readonly id: string;
  readonly rows: RowPlan | null;
  readonly copy: CopyPlan | null;
  /** The spec `rows` or `copy` was compiled from (posted to workers). */
  readonly rowSpec: RowPlanSpec | null;
  readonly copySpec: CopyPlanSpec | null;
  /** Output column names, to name masked columns on events. */
  readonly names: readonly string[];
  /** True when a value may change (some column has an operation). */
  readonly active: boolean;
  /** A COPY result whose first data row is its CSV header line. */
  readonly header: boolean;
}

/** The resource-wide masking inputs of a {@link ResultPlanner}. */
export interface ResultPlannerOptions {
  readonly rules: ColumnRules;
  /** Finds the table column behind a RowDescription field (defence in depth); may return null. */
  readonly locate: ColumnLocator;
  readonly hashKey: Uint8Array | null;
  readonly detector: {
    readonly kinds: readonly DetectorKind[];
    readonly styles: Readonly<Partial<Record<DetectorKind, MaskStyle>>>;
  } | null;
  /** Told when a result does not match its statement's lineage (the plan then redacts all). */
  readonly onMismatch?: (detail: string) => void;
}

const REDACT: MaskAction = Object.freeze({ kind: 'redact' });

let nextPlanId = 0;

/**
 * Turns a statement's {@link StatementMask} and the result's column types into compiled plans,
 * cached per mask and layout, so a repeated statement reuses its plan. Fail closed:
 * - a result of a statement the gateway could not judge (mask null) redacts every column;
 * - a result whose column count differs from the lineage's redacts every column;
 * - a RowDescription field that names a masked table column (by table OID and attribute number)
 *   is masked with its rule even where the lineage said otherwise.
 */
export class ResultPlanner {
  readonly #options: ResultPlannerOptions;
  readonly #detector: ContentDetector | null;
  readonly #cache = new WeakMap<object, Map<string, ResultPlan>>();
  #lastDescribed: {
    mask: StatementMask | null;
    body: Buffer;
    plan: ResultPlan;
  } | null = null;
  readonly #unknown = {};

  constructor(options: ResultPlannerOptions) {
    this.#options = options;
    const keyed = options.hashKey === null ? {} : { hashKey: options.hashKey };
    this.#detector =
      options.detector === null
        ? null
        : new ContentDetector({
            kinds: options.detector.kinds,
            styles: options.detector.styles,
            ...keyed,
          });
  }

  /** The resource's content detector (for error and notice fields); null when off. */
  get detector(): ContentDetector | null {
    return this.#detector;
  }

  /**
   * The plan for rows a RowDescription body `buf[start, end)` describes: cached by the body's
   * bytes, so a repeated result costs one string key and one lookup, no decoding.
   */
  described(mask: StatementMask | null, buf: Buffer, start: number, end: number): ResultPlan {
    // The same statement again (an OLTP loop): its description's bytes compared, no key built.
    const last = this.#lastDescribed;
    if (
      last !== null &&
      last.mask === mask &&
      last.body.length === end - start &&
      buf.compare(last.body, 0, last.body.length, start, end) === 0
    ) {
      return last.plan;
    }
    const plan = this.#cached(mask, `d${buf.toString('latin1', start, end)}`, () =>
      this.rows(mask, decodeRowDescription(buf, start, end)),
    );
    this.#lastDescribed = { mask, body: Buffer.from(buf.subarray(start, end)), plan };
    return plan;
  }

  /** The plan for rows described by `fields` (RowDescription, or the statement's last one). */
  rows(mask: StatementMask | null, fields: readonly ResultField[]): ResultPlan {
    const layout = fields.map((f) => `${f.typeOid}:${f.format}:${f.tableOid}:${f.columnAttr}`);
    return this.#cached(mask, `r${layout.join(',')}`, () => {
      const actions = this.#actions(mask, fields.length);
      fields.forEach((field, i) => {
        if (field.tableOid === 0) return;
        const source = this.#options.locate(field.tableOid, field.columnAttr);
        if (source === null) return;
        const rule = this.#options.rules.ruleFor(source.schema, source.table, source.column);
        const current = actions[i];
        if (rule !== null && (current === null || current?.kind === 'detect')) {
          actions[i] = rule.style;
          this.#options.onMismatch?.(
            `column ${i + 1} (${source.schema}.${source.table}.${source.column}) is masked by rule "${rule.name}" though the lineage did not say so`,
          );
        }
      });
      const columns: ColumnType[] = fields.map((f) => ({
        typeOid: f.typeOid,
        format: f.format === 1 ? 1 : 0,
      }));
      const spec: RowPlanSpec = { actions, columns, ...this.#keyed() };
      const rows = compileRowPlan(spec, this.#detector ?? undefined);
      return this.#plan(
        rows,
        null,
        spec,
        null,
        mask,
        fields.map((f) => f.name),
        false,
      );
    });
  }

  /** The plan of a `COPY … TO STDOUT` result with `columns` columns (text or CSV). */
  copy(mask: StatementMask | null, columns: number): ResultPlan {
    return this.#cached(mask, `c${columns}`, () => {
      const actions = this.#actions(mask, columns);
      const options = mask?.copy ?? { format: 'text' as const, header: false };
      const spec: CopyPlanSpec = {
        actions,
        format: options.format === 'csv' ? 'csv' : 'text',
        ...(options.delimiter === undefined ? {} : { delimiter: options.delimiter }),
        ...(options.null === undefined ? {} : { null: options.null }),
        ...(options.quote === undefined ? {} : { quote: options.quote }),
        ...(options.escape === undefined ? {} : { escape: options.escape }),
        ...this.#keyed(),
      };
      const copy = compileCopyPlan(spec, this.#detector ?? undefined);
      const names = mask?.names ?? actions.map((_, i) => `column ${i + 1}`);
      return this.#plan(null, copy, null, spec, mask, names, options.header);
    });
  }

  #keyed(): { hashKey?: Uint8Array } {
    return this.#options.hashKey === null ? {} : { hashKey: this.#options.hashKey };
  }

  #actions(mask: StatementMask | null, count: number): (MaskAction | null)[] {
    if (mask === null) return new Array<MaskAction | null>(count).fill(REDACT);
    if (mask.actions.length !== count) {
      this.#options.onMismatch?.(
        `the result has ${count} columns where the statement's lineage has ${mask.actions.length}; every column is redacted`,
      );
      return new Array<MaskAction | null>(count).fill(REDACT);
    }
    return [...mask.actions];
  }

  #cached(mask: StatementMask | null, layout: string, build: () => ResultPlan): ResultPlan {
    const owner = mask ?? this.#unknown;
    let plans = this.#cache.get(owner);
    const hit = plans?.get(layout);
    if (hit !== undefined) return hit;
    const plan = build();
    if (plans === undefined) {
      plans = new Map();
      this.#cache.set(owner, plans);
    }
    if (plans.size >= 64) plans.clear();
    plans.set(layout, plan);
    return plan;
  }

  #plan(
    rows: RowPlan | null,
    copy: CopyPlan | null,
    rowSpec: RowPlanSpec | null,
    copySpec: CopyPlanSpec | null,
    mask: StatementMask | null,
    names: readonly string[],
    header: boolean,
  ): ResultPlan {
    const compiled = rows ?? copy?.rows ?? null;
    return {
      id: `p${process.pid}.${nextPlanId++}`,
      rows,
      copy,
      rowSpec,
      copySpec,
      names: mask?.names.length === names.length ? mask.names : names,
      active: compiled !== null && compiled.lastActive >= 0,
      header,
    };
  }
}
