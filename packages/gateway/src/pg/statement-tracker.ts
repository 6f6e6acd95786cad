import type {
  PolicyDecision,
  StatementError,
  StatementProtocol,
  StatementRecord,
} from '@portcullis/core';
import {
  BackendCode,
  FrontendCode,
  decodeBind,
  decodeCommandComplete,
  decodeErrorFields,
  decodeExecute,
  decodeFunctionCall,
  decodeParse,
  decodeQuery,
  decodeTarget,
  rowsFromCommandTag,
} from '@portcullis/protocol-pg';

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
];

/** What the gateway concluded about a statement's text: the policy decision and what to record. */
export interface Judgement {
  readonly decision: PolicyDecision;
  /** The text as recorded (literals redacted unless the deployment opted out). */
  readonly recordedText: string;
  readonly kind: string;
  readonly fingerprint: string;
  readonly tables: readonly string[];
}

/** What the tracker needs from its owner. */
export interface StatementTrackerHooks {
  /** Current time in microseconds. */
  now(): number;
  /** Analyses and judges statement text (cached by the owner; called once per Query or Parse). */
  judge(text: string): Judgement;
  onStatement(record: StatementRecord): void;
}

/** Judgement of an Execute whose portal or statement the tracker never saw. */
const UNKNOWN_STATEMENT: Judgement = {
  decision: { action: 'allow', rule: 'default', message: '' },
  recordedText: '',
  kind: 'unknown',
  fingerprint: '',
  tables: [],
};

/** A statement sent and not yet answered; a `sync` entry marks a Sync or simple Query's end. */
interface Pending {
  kind: 'statement' | 'sync';
  protocol: StatementProtocol;
  judgement: Judgement;
  preparedName: string;
  params: number;
  startUs: number;
  rows: number;
  bytes: number;
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
  readonly #portals = new Map<string, { statement: string; params: number }>();
  readonly #queue: Pending[] = [];

  constructor(hooks: StatementTrackerHooks) {
    this.#hooks = hooks;
  }

  /** Statements sent and not yet finished. */
  get inFlight(): number {
    return this.#queue.length;
  }

  /**
   * A frame the client sent (called in order, before it is forwarded). Returns the judgement
   * of the statement a Query or Parse carries, or that a Bind binds; null for other frames.
   */
  clientFrame(type: number, buf: Buffer, start: number, end: number): Judgement | null {
    switch (type) {
      case FrontendCode.Query: {
        const judgement = this.#hooks.judge(decodeQuery(buf, start, end));
        this.#push('statement', 'simple', judgement, '', 0);
        this.#push('sync', 'simple', UNKNOWN_STATEMENT, '', 0);
        return judgement;
      }
      case FrontendCode.Parse: {
        const parse = decodeParse(buf, start, end);
        const judgement = this.#hooks.judge(parse.query);
        this.#statements.set(parse.name, judgement);
        return judgement;
      }
      case FrontendCode.Bind: {
        const bind = decodeBind(buf, start, end);
        this.#portals.set(bind.portal, { statement: bind.statement, params: bind.params });
        return this.#statements.get(bind.statement) ?? null;
      }
      case FrontendCode.Execute: {
        const { portal } = decodeExecute(buf, start, end);
        const bound = this.#portals.get(portal);
        const judgement = bound === undefined ? undefined : this.#statements.get(bound.statement);
        const preparedName = bound?.statement ?? '';
        this.#push(
          'statement',
          'extended',
          judgement ?? UNKNOWN_STATEMENT,
          preparedName,
          bound?.params ?? 0,
        );
        return null;
      }
      case FrontendCode.Close: {
        const { target, name } = decodeTarget(buf, start, end);
        if (target === 'statement') this.#statements.delete(name);
        else this.#portals.delete(name);
        return null;
      }
      case FrontendCode.Sync:
        this.#push('sync', 'extended', UNKNOWN_STATEMENT, '', 0);
        return null;
      case FrontendCode.FunctionCall: {
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
          if (type === BackendCode.DataRow) head.rows++;
          head.bytes += length + 5;
        }
        return;
      }
      case BackendCode.CommandComplete:
        this.#complete(decodeCommandComplete(buf, start, end), null);
        return;
      case BackendCode.PortalSuspended:
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
        const fields = decodeErrorFields(buf, start, end);
        this.#fail({ code: fields.code, message: fields.message });
        return;
      }
      case BackendCode.ReadyForQuery:
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
    });
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
    });
    if (head.protocol === 'simple' && error === null) {
      // A multi-statement query goes on: the next command starts now.
      head.startUs = now;
      head.rows = 0;
      head.bytes = 0;
    } else {
      this.#queue.shift();
    }
  }

  #fail(error: StatementError): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    if (head.kind === 'statement') this.#complete('', error);
    // The server skips everything up to the next Sync: drop what will never run.
    while (this.#queue[0]?.kind === 'statement') this.#queue.shift();
  }

  /** ReadyForQuery ends a simple Query, a function call or an extended batch at its Sync. */
  #ready(): void {
    while (this.#queue.length > 0) {
      const entry = this.#queue.shift()!;
      if (entry.kind === 'sync') return;
    }
  }
}
