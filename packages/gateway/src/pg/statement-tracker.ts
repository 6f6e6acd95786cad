import {
  PortcullisError,
  type PolicyDecision,
  type StatementError,
  type StatementProtocol,
  type StatementRecord,
} from '@portcullis/core';
import {
  BackendCode,
  FrontendCode,
  decodeBind,
  decodeBindResultFormats,
  decodeRowDescription,
  decodeCommandComplete,
  decodeErrorFields,
  decodeExecute,
  decodeFunctionCall,
  decodeParse,
  decodeQuery,
  decodeTarget,
  rowsFromCommandTag,
} from '@portcullis/protocol-pg';
import type { StatementMask } from '../masking/masking-verdict.js';
import type { ResultField, ResultPlan, ResultPlanner } from '../masking/result-planner.js';

/** Client frame types whose bodies the tracker reads (the scanner must assemble them whole). */
export const TRACKED_CLIENT_FRAMES: readonly number[] = [
  FrontendCode.Query,
  FrontendCode.Parse,
  FrontendCode.Bind,
  FrontendCode.Execute,
  FrontendCode.Close,
  FrontendCode.FunctionCall,
];

/** Server frame types whose bodies the tracker reads. */
export const TRACKED_SERVER_FRAMES: readonly number[] = [
  BackendCode.CommandComplete,
  BackendCode.ErrorResponse,
  BackendCode.ReadyForQuery,
  BackendCode.RowDescription,
  BackendCode.CopyOutResponse,
];

/** What the gateway concluded about a statement's text: the policy decision and what to record. */
export interface Judgement {
  readonly decision: PolicyDecision;
  /** The text as recorded (literals redacted unless the deployment opted out). */
  readonly recordedText: string;
  readonly kind: string;
  readonly fingerprint: string;
  readonly tables: readonly string[];
  /** How each statement's rows are masked; null when the session masks nothing. */
  readonly masks: readonly StatementMask[] | null;
  /** Set when masking, not the statement policy, refused the statement. */
  readonly refusedByMasking?: true;
  /**
   * For masks computed under the session's search path: whether they still hold. A prepared
   * statement is re-analysed by the server when the path changes, so its rows then come from
   * tables the masks did not see; they are redacted whole instead.
   */
  readonly masksValid?: () => boolean;
}

/** What the tracker needs from its owner. */
export interface StatementTrackerHooks {
  /** Current time in microseconds. */
  now(): number;
  /** Analyses and judges statement text (cached by the owner; called once per Query or Parse). */
  judge(text: string): Judgement;
  onStatement(record: StatementRecord): void;
  /** Plans the masking of each result as it starts; absent when the session masks nothing. */
  readonly planner?: ResultPlanner;
}

/** Judgement of an Execute whose portal or statement the tracker never saw. */
const UNKNOWN_STATEMENT: Judgement = {
  decision: { action: 'allow', rule: 'default', message: '' },
  recordedText: '',
  kind: 'unknown',
  fingerprint: '',
  tables: [],
  masks: null,
};

/**
 * A statement sent and not yet answered; a `sync` entry marks a Sync or simple Query's end, a
 * `describe` entry a Describe whose RowDescription (or NoData) is still to come.
 */
interface Pending {
  kind: 'statement' | 'sync' | 'describe';
  protocol: StatementProtocol;
  judgement: Judgement;
  preparedName: string;
  params: number;
  startUs: number;
  rows: number;
  bytes: number;
  /** Result formats bound to the executed portal (masking sessions only). */
  formats: readonly number[];
  /** Commands of a simple Query completed so far: the index of its current statement. */
  command: number;
  /** Values masked, and the names of the columns they were in. */
  maskedValues: number;
  maskedColumns: Set<string> | null;
}

/** A bound portal: its statement, parameter count and result formats. */
interface Portal {
  readonly statement: string;
  /** The statement's judgement when it was bound: a later Parse does not change what it runs. */
  readonly judgement: Judgement;
  readonly params: number;
  readonly formats: readonly number[];
  /** Its execution was approved: further Executes only fetch more of its rows. */
  approved: boolean;
}

const TEXT_ONLY: readonly number[] = [];

function sameFormats(a: readonly number[], b: readonly number[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Follows one PostgreSQL session's traffic in both directions and reports one record per
 * executed statement: simple queries (one per command they complete), the extended protocol
 * (Parse/Bind/Execute, pipelined, with named and unnamed statements and portals), function
 * calls and COPY. Pure: it reads frames it is handed and keeps no socket.
 */
export class StatementTracker {
  readonly #hooks: StatementTrackerHooks;
  /** Prepared statements by name: their judgement. */
  readonly #statements = new Map<string, Judgement>();
  /** Portals by name: the statement they bind and the parameter count. */
  readonly #portals = new Map<string, Portal>();
  /**
   * Result columns of prepared statements, from their last RowDescription (masking only), with
   * that frame's body: libpq describes the portal before every Execute, and an unchanged
   * description keeps the statement's decoded columns and its cached plan.
   */
  readonly #fields = new Map<
    string,
    { readonly body: Buffer; readonly fields: readonly ResultField[] }
  >();
  /** The last plan each prepared statement's Execute used, so a repeated Execute reuses it. */
  readonly #executePlans = new Map<
    string,
    {
      readonly mask: StatementMask | null;
      readonly count: number;
      readonly formats: readonly number[];
      readonly plan: ResultPlan;
    }
  >();
  readonly #queue: Pending[] = [];
  /** How the rows of the result now streaming are masked; null when none is. */
  #plan: ResultPlan | null = null;
  /** The next CopyData of a CSV COPY with HEADER is its header line. */
  #copyHeader = false;
  #syncs = 0;
  #readies = 0;
  /** Client frames since the last Sync, Query or FunctionCall (each ends a batch). */
  #sinceSync = 0;

  constructor(hooks: StatementTrackerHooks) {
    this.#hooks = hooks;
  }

  /** Statements sent and not yet finished. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /** Sync messages seen so far (each ends an extended-protocol batch). */
  get syncs(): number {
    return this.#syncs;
  }

  /** ReadyForQuery messages seen so far. */
  get readies(): number {
    return this.#readies;
  }

  /** True when the last client frame is the first of its batch. */
  get batchStart(): boolean {
    return this.#sinceSync === 1;
  }

  /** ReadyForQuery messages still to come for what the client sent. */
  get pendingReadies(): number {
    let n = 0;
    for (const entry of this.#queue) if (entry.kind === 'sync') n++;
    return n;
  }

  /**
   * Prepared statement `name` now holds a statement judged `judgement` upstream (the gateway
   * parsed it there itself), as after a client's Parse of it.
   */
  statementReplaced(name: string, judgement: Judgement): void {
    this.#statements.set(name, judgement);
    this.#fields.delete(name);
    this.#executePlans.delete(name);
  }

  /**
   * The execution of portal `name` was approved: its later Executes (fetching more rows of the
   * same run) are not judged again. A new Bind of the name makes a new portal.
   */
  approvePortal(name: string): void {
    const portal = this.#portals.get(name);
    if (portal !== undefined) portal.approved = true;
  }

  /**
   * The masking plan of the result now streaming (set by RowDescription, CopyOutResponse or the
   * first DataRow of an Execute); null when the session masks nothing or no result streams.
   */
  get plan(): ResultPlan | null {
    return this.#plan;
  }

  /** True once per COPY: the CopyData about to be masked is the CSV header line. */
  takeCopyHeader(): boolean {
    const header = this.#copyHeader;
    this.#copyHeader = false;
    return header;
  }

  /** Counts values masked in the current result (columns by index into the plan). */
  noteMasked(values: number, columns: readonly number[]): void {
    const head = this.#queue[0];
    if (head === undefined || head.kind !== 'statement') return;
    head.maskedValues += values;
    const names = this.#plan?.names;
    head.maskedColumns ??= new Set();
    for (const i of columns) head.maskedColumns.add(names?.[i] ?? `column ${i + 1}`);
  }

  /**
   * A frame the client sent (called in order, before it is forwarded). Returns the judgement
   * of the statement a Query or Parse carries, that a Bind binds or that an Execute runs (null
   * when its portal is unknown or was approved); null for other frames.
   */
  clientFrame(type: number, buf: Buffer, start: number, end: number): Judgement | null {
    this.#sinceSync++;
    switch (type) {
      case FrontendCode.Query: {
        this.#sinceSync = 0;
        const judgement = this.#hooks.judge(decodeQuery(buf, start, end));
        this.#push('statement', 'simple', judgement, '', 0);
        this.#push('sync', 'simple', UNKNOWN_STATEMENT, '', 0);
        return judgement;
      }
      case FrontendCode.Parse: {
        const parse = decodeParse(buf, start, end);
        const judgement = this.#hooks.judge(parse.query);
        this.#statements.set(parse.name, judgement);
        this.#fields.delete(parse.name);
        this.#executePlans.delete(parse.name);
        return judgement;
      }
      case FrontendCode.Bind: {
        const bind = decodeBind(buf, start, end);
        const formats =
          this.#hooks.planner === undefined ? TEXT_ONLY : decodeBindResultFormats(buf, start, end);
        const judgement = this.#statements.get(bind.statement);
        this.#portals.set(bind.portal, {
          statement: bind.statement,
          judgement: judgement ?? UNKNOWN_STATEMENT,
          params: bind.params,
          formats,
          approved: false,
        });
        return judgement ?? null;
      }
      case FrontendCode.Execute: {
        const { portal } = decodeExecute(buf, start, end);
        const bound = this.#portals.get(portal);
        this.#push(
          'statement',
          'extended',
          bound?.judgement ?? UNKNOWN_STATEMENT,
          bound?.statement ?? '',
          bound?.params ?? 0,
          bound?.formats ?? TEXT_ONLY,
        );
        return bound === undefined || bound.approved ? null : bound.judgement;
      }
      case FrontendCode.Describe: {
        if (this.#hooks.planner === undefined) return null;
        const { target, name } = decodeTarget(buf, start, end);
        const statement = target === 'statement' ? name : this.#portals.get(name)?.statement;
        // A Describe of an unknown portal is answered with an error; keep the queue in step.
        this.#push('describe', 'extended', UNKNOWN_STATEMENT, statement ?? '\u0000', 0);
        return null;
      }
      case FrontendCode.Close: {
        const { target, name } = decodeTarget(buf, start, end);
        if (target === 'statement') {
          this.#statements.delete(name);
          this.#fields.delete(name);
          this.#executePlans.delete(name);
        } else {
          this.#portals.delete(name);
        }
        return null;
      }
      case FrontendCode.Sync:
        this.#syncs++;
        this.#sinceSync = 0;
        this.#push('sync', 'extended', UNKNOWN_STATEMENT, '', 0);
        return null;
      case FrontendCode.FunctionCall: {
        this.#sinceSync = 0;
        const call = decodeFunctionCall(buf, start, end);
        const judgement: Judgement = {
          ...UNKNOWN_STATEMENT,
          recordedText: `<function call oid=${call.functionOid}>`,
          kind: 'function-call',
        };
        this.#push('statement', 'function-call', judgement, '', call.args);
        this.#push('sync', 'function-call', UNKNOWN_STATEMENT, '', 0);
        return null;
      }
      default:
        return null;
    }
  }

  /** A frame the server sent; `length` is the body length even when `buf` is not kept. */
  serverFrame(type: number, buf: Buffer, start: number, end: number, length: number): void {
    switch (type) {
      case BackendCode.DataRow:
      case BackendCode.CopyData: {
        const head = this.#queue[0];
        if (head !== undefined) {
          if (type === BackendCode.DataRow) {
            head.rows++;
            if (this.#plan === null && this.#hooks.planner !== undefined) {
              this.#planExecute(head, buf, start, end);
            }
          }
          head.bytes += length + 5;
        }
        return;
      }
      case BackendCode.RowDescription:
        if (this.#hooks.planner !== undefined) this.#described(buf, start, end);
        return;
      case BackendCode.NoData: {
        if (this.#queue[0]?.kind === 'describe') this.#queue.shift();
        return;
      }
      case BackendCode.CopyOutResponse:
        if (this.#hooks.planner !== undefined) this.#copyOut(buf, start, end);
        return;
      case BackendCode.CopyDone:
        this.#plan = null;
        return;
      case BackendCode.CommandComplete:
        this.#plan = null;
        this.#complete(decodeCommandComplete(buf, start, end), null);
        return;
      case BackendCode.PortalSuspended:
        this.#plan = null;
        this.#complete('', null);
        return;
      case BackendCode.FunctionCallResponse:
        this.#complete('FUNCTION CALL', null);
        return;
      case BackendCode.EmptyQueryResponse: {
        const head = this.#queue[0];
        if (head?.kind === 'statement' && head.protocol === 'extended') this.#queue.shift();
        return;
      }
      case BackendCode.ErrorResponse: {
        this.#plan = null;
        const fields = decodeErrorFields(buf, start, end);
        this.#fail({ code: fields.code, message: fields.message });
        return;
      }
      case BackendCode.ReadyForQuery:
        this.#plan = null;
        this.#ready();
        return;
      default:
    }
  }

  #push(
    kind: Pending['kind'],
    protocol: StatementProtocol,
    judgement: Judgement,
    preparedName: string,
    params: number,
    formats: readonly number[] = TEXT_ONLY,
  ): void {
    this.#queue.push({
      kind,
      protocol,
      judgement,
      preparedName,
      params,
      startUs: kind === 'statement' ? this.#hooks.now() : 0,
      rows: 0,
      bytes: 0,
      formats,
      command: 0,
      maskedValues: 0,
      maskedColumns: null,
    });
  }

  /** The mask of the statement at the head of the queue; null (redact all) when unknown. */
  #maskOf(head: Pending): StatementMask | null {
    const { judgement } = head;
    if (judgement.masksValid !== undefined && !judgement.masksValid()) return null;
    return judgement.masks?.[head.protocol === 'simple' ? head.command : 0] ?? null;
  }

  /** A RowDescription: answers a Describe (kept for later Executes) or starts simple-query rows. */
  #described(buf: Buffer, start: number, end: number): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    if (head.kind === 'describe') {
      this.#queue.shift();
      const known = this.#fields.get(head.preparedName);
      if (known !== undefined && buf.compare(known.body, 0, known.body.length, start, end) === 0) {
        return;
      }
      this.#fields.set(head.preparedName, {
        body: Buffer.from(buf.subarray(start, end)),
        fields: decodeRowDescription(buf, start, end),
      });
      this.#executePlans.delete(head.preparedName);
    } else if (head.kind === 'statement') {
      this.#plan = this.#hooks.planner!.described(this.#maskOf(head), buf, start, end);
    }
  }

  /** The first DataRow of an Execute: plan with the statement's described types and bound formats. */
  #planExecute(head: Pending, buf: Buffer, start: number, end: number): void {
    if (head.kind !== 'statement' || end - start < 2) return;
    const count = buf.readUInt16BE(start);
    const mask = this.#maskOf(head);
    const cached = this.#executePlans.get(head.preparedName);
    if (
      cached !== undefined &&
      cached.mask === mask &&
      cached.count === count &&
      sameFormats(cached.formats, head.formats)
    ) {
      this.#plan = cached.plan;
      return;
    }
    const described = this.#fields.get(head.preparedName)?.fields;
    const fields: ResultField[] = [];
    for (let i = 0; i < count; i++) {
      const field = described?.length === count ? described[i] : undefined;
      const format = head.formats.length === 1 ? head.formats[0]! : (head.formats[i] ?? 0);
      fields.push({
        name: field?.name ?? '',
        tableOid: field?.tableOid ?? 0,
        columnAttr: field?.columnAttr ?? 0,
        typeOid: field?.typeOid ?? 0,
        format,
      });
    }
    const plan = this.#hooks.planner!.rows(mask, fields);
    this.#executePlans.set(head.preparedName, { mask, count, formats: head.formats, plan });
    this.#plan = plan;
  }

  /** CopyOutResponse: overall format (Int8), column count (Int16), per-column formats. */
  #copyOut(buf: Buffer, start: number, end: number): void {
    const head = this.#queue[0];
    if (head === undefined || head.kind !== 'statement' || end - start < 3) return;
    const binary = buf[start] === 1;
    const mask = this.#maskOf(head);
    const plan = this.#hooks.planner!.copy(mask, buf.readUInt16BE(start + 1));
    // Binary COPY of masked columns is refused before it runs; the detectors cannot read it.
    this.#plan = binary ? null : plan;
    this.#copyHeader = !binary && plan.header;
    if (binary && (mask === null || mask.rules.some((rule) => rule !== null))) {
      throw new PortcullisError(
        'PCL_ERR_MASKING_FAILED',
        'a binary COPY of a statement the gateway could not trace started; session ended',
      );
    }
  }

  /** A command finished: report the statement at the head of the queue. */
  #complete(tag: string, error: StatementError | null): void {
    const head = this.#queue[0];
    if (head === undefined || head.kind !== 'statement') return;
    const now = this.#hooks.now();
    const dataRows = head.rows;
    const { judgement } = head;
    this.#hooks.onStatement({
      text: judgement.recordedText,
      protocol: head.protocol,
      ...(head.protocol === 'extended' ? { preparedName: head.preparedName } : {}),
      params: head.params,
      tag,
      rows: error === null ? rowsFromCommandTag(tag) || dataRows : dataRows,
      bytes: head.bytes,
      durationUs: Math.max(0, now - head.startUs),
      error,
      kind: judgement.kind,
      fingerprint: judgement.fingerprint,
      tables: judgement.tables,
      verdict: judgement.decision.action,
      rule: judgement.decision.rule,
      ...(head.maskedColumns === null
        ? {}
        : { masked: { values: head.maskedValues, columns: [...head.maskedColumns] } }),
    });
    if (head.protocol === 'simple' && error === null) {
      // A multi-statement query goes on: the next command starts now.
      head.startUs = now;
      head.rows = 0;
      head.bytes = 0;
      head.command++;
      head.maskedValues = 0;
      head.maskedColumns = null;
    } else {
      this.#queue.shift();
    }
  }

  #fail(error: StatementError): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    if (head.kind === 'statement') this.#complete('', error);
    // The server skips everything up to the next Sync: drop what will never run.
    while (this.#queue.length > 0 && this.#queue[0]!.kind !== 'sync') this.#queue.shift();
  }

  /** ReadyForQuery ends a simple Query, a function call or an extended batch at its Sync. */
  #ready(): void {
    this.#readies++;
    while (this.#queue.length > 0) {
      const entry = this.#queue.shift()!;
      if (entry.kind === 'sync') return;
    }
  }
}
