import type { Socket } from 'node:net';
import {
  PortcullisError,
  isPortcullisError,
  type Logger,
  type StatementRecord,
} from '@portcullis/core';
import {
  BackendCode,
  FrameForwarder,
  FrameScanner,
  FrontendCode,
  bind,
  decodeBind,
  decodeExecute,
  decodeParameterStatus,
  decodeParse,
  errorResponse,
  isFrontendCode,
  type FrameHandler,
  noticeResponse,
  parse,
  query,
  terminate,
} from '@portcullis/protocol-pg';
import {
  maskNoticeFields,
  rewriteCopyData,
  rewriteDataRow,
  rewriteDataRows,
  type DataRowsRewrite,
} from '@portcullis/masking';
import type { ApprovalOutcome, HeldApproval } from '../approvals/approval-broker.js';
import {
  EVENTS_REFUSED_HINT,
  EVENTS_REFUSED_SQLSTATE,
  eventsRefused,
} from '../events/event-admission.js';
import { nowUs, type SessionRecorder } from '../events/session-recorder.js';
import type { MaskingPool, MaskTestHook } from '../masking/masking-pool.js';
import type { ResultPlan, ResultPlanner } from '../masking/result-planner.js';
import { scrubRowDetails } from '../masking/scrub-row-details.js';
import { fatal, SqlState } from './pg-errors.js';
import { unreadableSetting } from './session-settings.js';
import { ChunkSplicer, RefusedExecutes } from './refused-executes.js';
import { approvalRefusal, refusalStatement } from './statement-judge.js';
import { StatementTracker, TRACKED_SERVER_FRAMES, type Judgement } from './statement-tracker.js';

/** Options of a {@link PgRelay}. */
export interface PgRelayOptions {
  readonly maxFrameBytes: number;
  readonly clientWriteBufferBytes: number;
  /** Analyses, judges and describes statement text (see statement-judge.ts). */
  readonly judge: (text: string) => Judgement;
  /** Names the resource in refusal hints. */
  readonly resource: string;
  /** False while statements cannot be recorded (fail-closed spool): a new one ends the session. */
  readonly eventsAccepting?: () => boolean;
  readonly logger: Logger;
  /** The session's process id upstream and the one the client was given instead. */
  readonly processIds: { readonly upstream: number; readonly client: number };
  /** Called once when both sides are closed. */
  readonly onClose: () => void;
  /** Masks result values; null when the session masks nothing. */
  readonly planner?: ResultPlanner | null;
  /** Worker threads for large runs of masked rows; inline only when absent. */
  readonly maskingPool?: MaskingPool | null;
  /** Runs of DataRows at least this long (bytes) go to the pool. */
  readonly workerThresholdBytes?: number;
  /** Test-only fault for the masking workers (honoured only with PORTCULLIS_TEST_HOOKS=1). */
  readonly maskingFault?: () => MaskTestHook | undefined;
  /**
   * Told of every finished statement after it is recorded. A returned promise holds the
   * client's next statements until it settles (the catalog reload after DDL).
   */
  readonly onStatement?: (record: StatementRecord) => Promise<void> | null;
  /**
   * Holds a `review` statement for approval: returns the pending request, or null when its rule
   * names no approvers (the statement is then refused at once). `onSettled` is called once.
   */
  readonly requestApproval?: (
    judgement: Judgement,
    onSettled: (outcome: ApprovalOutcome) => void,
  ) => HeldApproval | null;
  /** Client bytes buffered behind a held statement before the client socket is paused. */
  readonly maxHeldBytes?: number;
}

/** A statement waiting for a decision (see PgRelay.#holdForApproval). */
interface Hold {
  readonly approval: HeldApproval;
  /** The held Query or Execute. */
  readonly frame: Buffer;
  /** An Execute's portal and what goes upstream ahead of it once granted; null for a Query. */
  readonly execute: { readonly portal: string; readonly plan: UnitPlan } | null;
  readonly judgement: Judgement;
  readonly sinceUs: number;
}

/** A frame kept back in a {@link Unit}, as it would go upstream. */
interface Kept {
  readonly frame: Buffer;
  /** A Parse of the unnamed statement. */
  readonly unnamedParse: boolean;
  /** For a Bind of a review statement: its judgement (the portal could run the statement). */
  readonly reviewBind: Judgement | null;
  /** For a Bind of a named review statement: the name (it runs as the unnamed statement). */
  readonly named: string | null;
}

/**
 * The frames of a review statement's Parse or Bind and the Parse, Bind and Describe frames after
 * it, kept back until it is known whether an Execute of it follows (see PgRelay.#inUnit).
 */
interface Unit {
  readonly frames: Kept[];
  bytes: number;
  /** Its first frame began a batch. */
  readonly batchStart: boolean;
}

/** What goes upstream for a granted {@link Unit}. */
interface UnitPlan {
  readonly frames: readonly Buffer[];
  /** A Parse of a named review statement's text as the unnamed statement leads the frames. */
  readonly injected: boolean;
  /** The named review statement the upstream unnamed statement holds afterwards, or null. */
  readonly holds: string | null;
}

const NOTHING = Buffer.alloc(0);

/** Replies up to this size that masking split into parts are joined into one write. */
const SMALL_WRITE_BYTES = 16 * 1024;

/**
 * Upstream chunks at least this long have their runs of DataRows masked as batches; shorter
 * ones (a few rows, as in OLTP traffic) go through the forwarder frame by frame, which for one
 * row allocates less than setting up a batch.
 */
const BATCH_MIN_BYTES = 2048;

/** Told to a client whose function call (the protocol's FunctionCall) is refused. */
const FUNCTION_CALL_REFUSED =
  'fast-path function calls cannot be masked; masking applies to this resource, so they are refused';

/**
 * Relays one authenticated session between a client and its upstream server. Chunks are
 * forwarded as they arrived — never re-serialized — after a scanner has read the frames in
 * them for recording. Each direction stops reading when the other side's output backs up, so
 * a slow or stuck peer holds at most one chunk beyond the write bound.
 */
export class PgRelay {
  readonly #client: Socket;
  readonly #upstream: Socket;
  readonly #recorder: SessionRecorder;
  readonly #options: PgRelayOptions;
  readonly #tracker: StatementTracker;
  readonly #clientForwarder: FrameForwarder;
  readonly #serverScanner: FrameScanner;
  /** Forwards server frames whole, masked where a plan says, when the session masks results. */
  readonly #serverForwarder: FrameForwarder | null;
  readonly #planner: ResultPlanner | null;
  /** What one upstream chunk forwards on the masking path (reused). */
  readonly #serverOut: Buffer[] = [];
  /** A run of rows is on a masking worker: later upstream chunks wait here, in order. */
  #maskingOnWorker = false;
  readonly #waitingChunks: Buffer[] = [];
  readonly #startedUs = nowUs();
  #statements = 0;
  #rows = 0;
  #bytesFromClient = 0;
  #bytesToClient = 0;
  #closing = false;
  #reason = 'client-closed';
  #endError: { code: string; message: string } | null = null;
  #upstreamPaused = false;
  /** The upstream chunk being scanned (frames that lie inside it can be patched in place). */
  #upstreamChunk: Buffer | null = null;
  #clientClosed = false;
  #clientTerminated = false;
  /** What one client chunk forwards (reused: no allocation per chunk). */
  readonly #clientOut: Buffer[] = [];
  /** Set when the server reports a setting the gateway cannot read statements under. */
  #unreadable: string | null = null;
  #upstreamClosed = false;
  /** Pending holds on reading the client (see PgRelayOptions.onStatement). */
  #clientHolds = 0;
  /** The upstream socket's buffer is full: the client stays paused until it drains. */
  #upstreamBackedUp = false;
  /** The statement held for approval; client frames after it wait in #heldFrames, in order. */
  #hold: Hold | null = null;
  readonly #heldFrames: Buffer[] = [];
  #heldBytes = 0;
  /** A notice for the client, sent at the next server frame boundary. */
  #pendingNotice: Buffer | null = null;
  /** A review statement's frames kept back until its Execute or the end of its batch. */
  #unit: Unit | null = null;
  /**
   * Named review statements, as a Parse of their text as the unnamed statement. Upstream the
   * name holds a refusal instead, so SQL-level EXECUTE of it cannot run the statement.
   */
  readonly #namedReview = new Map<string, Buffer>();
  /** The named review statement whose text the upstream unnamed statement holds, or null. */
  #unnamedHolds: string | null = null;
  /** Executes sent upstream in place of refused ones, whose errors become the refusals. */
  readonly #refused = new RefusedExecutes();
  /** While refusals are pending: splices them into upstream chunks (non-masking path). */
  readonly #splicer = new ChunkSplicer();
  readonly #splicedOut: Buffer[] = [];
  /** From this many ReadyForQuery on, the next ParseComplete answers a Parse the gateway sent. */
  #swallowAfter = -1;
  /** tracker.syncs while the rest of a refused Execute's batch is skipped upstream; else -1. */
  #skipBatch = -1;
  /** The server scanner's handler: #scanFrame, or #scanFrameSpliced while splicing. */
  readonly #serverHandler: FrameHandler;
  readonly #scanFrame: FrameHandler['onFrame'];

  constructor(
    client: Socket,
    upstream: Socket,
    recorder: SessionRecorder,
    options: PgRelayOptions,
  ) {
    this.#client = client;
    this.#upstream = upstream;
    this.#recorder = recorder;
    this.#options = options;
    this.#planner = options.planner ?? null;
    this.#tracker = new StatementTracker({
      now: nowUs,
      judge: options.judge,
      onStatement: (record) => this.#onStatement(record),
      ...(this.#planner === null ? {} : { planner: this.#planner }),
    });
    const tracker = this.#tracker;
    // Client frames go upstream whole once complete, so a refused one can be replaced before
    // any of it leaves; client traffic is small next to results.
    this.#clientForwarder = new FrameForwarder(
      { onFrame: (type, buf, start, end) => this.#onClientFrame(type, buf, start, end) },
      { maxFrameBytes: options.maxFrameBytes },
    );
    this.#scanFrame = (type, buf, start, end, length) => {
      if (type === BackendCode.NotificationResponse) this.#rewriteNotifier(buf, start, end);
      else if (type === BackendCode.ParameterStatus) this.#checkSetting(buf, start, end);
      tracker.serverFrame(type, buf, start, end, length);
    };
    this.#serverHandler = { onFrame: this.#scanFrame };
    this.#serverScanner = new FrameScanner(this.#serverHandler, {
      maxFrameBytes: options.maxFrameBytes,
      assemble: [...TRACKED_SERVER_FRAMES, BackendCode.ParameterStatus],
    });
    this.#serverForwarder =
      this.#planner === null
        ? null
        : new FrameForwarder(
            {
              onFrame: (type, buf, start, end, length) =>
                this.#maskFrame(type, buf, start, end, length),
            },
            { maxFrameBytes: options.maxFrameBytes },
          );
  }

  /**
   * A whole server frame on the masking path: tracked, then rewritten where the result's plan
   * masks values. Errors and notices are scrubbed by the detectors before anything reads them,
   * so events record the scrubbed text too.
   */
  #maskFrame(type: number, buf: Buffer, start: number, end: number, length: number): Buffer | null {
    const tracker = this.#tracker;
    switch (type) {
      case BackendCode.DataRow: {
        tracker.serverFrame(type, buf, start, end, length);
        const plan = tracker.plan;
        if (plan?.rows == null || !plan.active) return null;
        const rewrite = rewriteDataRow(buf, start, end, plan.rows);
        if (rewrite === null) return null;
        tracker.noteMasked(rewrite.maskedValues, rewrite.maskedColumns);
        return rewrite.frame;
      }
      case BackendCode.CopyData: {
        tracker.serverFrame(type, buf, start, end, length);
        const plan = tracker.plan;
        if (plan?.copy == null || !plan.active) return null;
        const rewrite = rewriteCopyData(buf, start, end, plan.copy, {
          header: tracker.takeCopyHeader(),
        });
        if (rewrite === null) return null;
        tracker.noteMasked(rewrite.maskedValues, rewrite.maskedColumns);
        return rewrite.frame;
      }
      case BackendCode.ErrorResponse:
      case BackendCode.NoticeResponse: {
        if (type === BackendCode.ErrorResponse && this.#splicing) {
          const refusal = this.#spliceFor(type, buf, start, end);
          if (refusal !== null) {
            tracker.serverFrame(type, refusal, 5, refusal.length, refusal.length - 5);
            return refusal;
          }
        }
        let frame = scrubRowDetails(type, buf, start, end);
        if (frame !== null) [buf, start, end] = [frame, 5, frame.length];
        const detector = this.#planner!.detector;
        const masked = detector === null ? null : maskNoticeFields(type, buf, start, end, detector);
        if (masked !== null) frame = masked.frame;
        if (frame === null) {
          tracker.serverFrame(type, buf, start, end, length);
          return null;
        }
        tracker.serverFrame(type, frame, 5, frame.length, frame.length - 5);
        return frame;
      }
      case BackendCode.NotificationResponse:
        this.#rewriteNotifier(buf, start, end);
        break;
      case BackendCode.ParameterStatus:
        this.#checkSetting(buf, start, end);
        break;
      case BackendCode.ParseComplete:
        if (this.#splicing) return this.#spliceFor(type, buf, start, end);
        return null;
      case BackendCode.ReadyForQuery:
        tracker.serverFrame(type, buf, start, end, length);
        this.#afterReady();
        return null;
      default:
    }
    tracker.serverFrame(type, buf, start, end, length);
    return null;
  }

  /** True while an upstream frame may have to be replaced or dropped. */
  get #splicing(): boolean {
    return this.#swallowAfter >= 0 || this.#refused.size > 0;
  }

  /**
   * While splicing: what the client gets instead of this upstream frame (NOTHING to drop it),
   * or null to pass it on. Drops the answer to a Parse the gateway sent ahead of a unit, and
   * turns the error a refused Execute raised into its refusal.
   */
  #spliceFor(type: number, buf: Buffer, start: number, end: number): Buffer | null {
    if (this.#swallowAfter >= 0 && this.#tracker.readies >= this.#swallowAfter) {
      if (type === BackendCode.ParseComplete) {
        this.#swallowAfter = -1;
        return NOTHING;
      }
      // That Parse failed: its error is the client's answer (the server skips the rest).
      if (type === BackendCode.ErrorResponse) this.#swallowAfter = -1;
    }
    if (type !== BackendCode.ErrorResponse) return null;
    return this.#refused.replacement(buf, start, end);
  }

  /** A ReadyForQuery passed: once everything sent is answered, no refusal can come any more. */
  #afterReady(): void {
    if (this.#refused.size > 0 && this.#tracker.inFlight === 0) this.#refused.clear();
  }

  /** The server scanner's handler while splicing (non-masking path; see #fromUpstreamSpliced). */
  readonly #scanFrameSpliced = (
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    length: number,
  ): void => {
    const frameEnd = this.#serverScanner.frameEndInChunk;
    const frameStart = buf === this.#upstreamChunk && start >= 5 ? start - 5 : -1;
    let replacement = this.#spliceFor(type, buf, start, end);
    if (!this.#splicer.frame(frameStart, frameEnd, replacement)) replacement = null;
    if (replacement === null) this.#scanFrame(type, buf, start, end, length);
    else if (replacement.length > 0) {
      this.#tracker.serverFrame(type, replacement, 5, replacement.length, replacement.length - 5);
    }
    if (type === BackendCode.ReadyForQuery) this.#afterReady();
  };

  /** Starts relaying; `clientLeftover` are bytes the client sent after authenticating. */
  start(clientLeftover: Buffer, upstreamLeftover: Buffer): void {
    const client = this.#client;
    const upstream = this.#upstream;
    client.on('data', (chunk: Buffer) => this.#fromClient(chunk));
    upstream.on('data', (chunk: Buffer) => this.#fromUpstream(chunk));
    client.on('error', (err) => this.#options.logger.debug({ err }, 'client socket error'));
    upstream.on('error', (err) => this.#options.logger.debug({ err }, 'upstream socket error'));
    client.on('close', () => this.#onClientClosed());
    upstream.on('close', () => this.#onUpstreamClosed());
    client.on('drain', () => {
      if (this.#upstreamPaused) {
        this.#upstreamPaused = false;
        if (!this.#maskingOnWorker) upstream.resume();
      }
    });
    upstream.on('drain', () => {
      this.#upstreamBackedUp = false;
      if (this.#clientHolds === 0 && !this.#heldFull) client.resume();
    });
    // Login may have paused either socket (see SocketReader); from here backpressure rules.
    client.resume();
    upstream.resume();
    if (upstreamLeftover.length > 0) this.#fromUpstream(upstreamLeftover);
    if (clientLeftover.length > 0) this.#fromClient(clientLeftover);
  }

  /** Sends the client a NOTICE between server frames (an access grant about to end). */
  notice(message: string): void {
    if (this.#closing) return;
    this.#queueNotice(noticeResponse({ severity: 'NOTICE', code: '01000', message }));
  }

  /** Queues a NoticeResponse frame for the client; it goes out between server frames. */
  #queueNotice(frame: Buffer): void {
    this.#pendingNotice =
      this.#pendingNotice === null ? frame : Buffer.concat([this.#pendingNotice, frame]);
    this.#flushNotice();
  }

  /** Ends the session from the gateway's side (shutdown), telling the client why. */
  terminate(code: string, message: string, reason: string): void {
    if (this.#closing) return;
    this.#reason = reason;
    this.#endError = { code, message };
    this.#closeBoth(this.#serverScanner.atBoundary ? fatal(code, message) : null);
  }

  /** A whole client frame: recorded, judged, and passed on or replaced (see #refuse). */
  #onClientFrame(type: number, buf: Buffer, start: number, end: number): Buffer | null {
    if (!isFrontendCode(type)) {
      throw new PortcullisError(
        'PCL_ERR_PROTOCOL_MALFORMED',
        `invalid frontend message type ${JSON.stringify(String.fromCharCode(type))}`,
      );
    }
    if (this.#hold !== null) {
      // Behind a held statement: kept, in order, until it is decided.
      const frame = wholeFrame(type, buf, start, end);
      this.#heldFrames.push(frame);
      this.#heldBytes += frame.length;
      if (this.#heldFull) this.#client.pause();
      return NOTHING;
    }
    if (type === FrontendCode.Terminate) this.#clientTerminated = true;
    const judgement = this.#tracker.clientFrame(type, buf, start, end);
    // A statement whose event could not be recorded must not run.
    if (judgement !== null && this.#options.eventsAccepting?.() === false) throw eventsRefused();
    if (this.#unnamedHolds !== null) this.#unnamedMayChange(type, buf, start);
    if (this.#unit === null) return this.#judged(type, buf, start, end, judgement);
    return this.#inUnit(type, buf, start, end, judgement);
  }

  /** The frame to send for a client frame, once recorded: null to send it as it came. */
  #judged(
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    judgement: Judgement | null,
  ): Buffer | null {
    if (type === FrontendCode.FunctionCall && this.#planner !== null) {
      // The server answers the refusal with ErrorResponse and ReadyForQuery, as it would a call.
      return query(refusalStatement(FUNCTION_CALL_REFUSED, `resource "${this.#options.resource}"`));
    }
    if (judgement === null || judgement.decision.action === 'allow') return null;
    if (judgement.decision.action === 'review' && this.#options.requestApproval !== undefined) {
      switch (type) {
        case FrontendCode.Query:
          if (this.#holdForApproval(type, buf, start, end, judgement, null)) return NOTHING;
          break;
        case FrontendCode.Parse:
        case FrontendCode.Bind:
          return this.#keep(type, buf, start, end, judgement);
        case FrontendCode.Execute:
          return this.#holdExecute(buf, start, end, judgement);
        default:
      }
    }
    // A refused statement's Parse and Bind were replaced: its Execute raises the refusal.
    if (type === FrontendCode.Execute) return null;
    return this.#refuse(type, buf, start, end, judgement);
  }

  /** True when the client's buffered frames reached the bound: its socket stays paused. */
  get #heldFull(): boolean {
    return this.#heldBytes > this.#maxHeldBytes;
  }

  get #maxHeldBytes(): number {
    return this.#options.maxHeldBytes ?? this.#options.maxFrameBytes;
  }

  /**
   * Where an extended-protocol `review` statement is held. Approval is asked at the Execute of a
   * portal bound to it, so each execution of a prepared statement is approved on its own. Its
   * Parse and Bind (and the Parse, Bind and Describe frames around them) are not sent ahead:
   * they wait in a unit until its Execute, and go upstream with it once approved. So nothing of
   * the statement reaches the server while it waits — no transaction opened and no lock taken
   * by parsing it, no portal that SQL-level FETCH could run — and a refusal can take the whole
   * unit's place. A unit that ends without the Execute (Sync, Flush, any other frame, or
   * `limits.maxFrameBytes` of frames) goes upstream, its Bind of the statement refused.
   */
  #keep(type: number, buf: Buffer, start: number, end: number, judgement: Judgement): Buffer {
    const tracker = this.#tracker;
    const unit = (this.#unit ??= { frames: [], bytes: 0, batchStart: tracker.batchStart });
    let kept: Kept;
    if (type === FrontendCode.Parse) {
      if (buf[start] === 0) {
        kept = { ...KEPT, frame: wholeFrame(type, buf, start, end), unnamedParse: true };
      } else {
        // Upstream the name holds a refusal; each approved execution runs the text unnamed.
        const { name } = decodeParse(buf, start, end);
        this.#namedReview.set(name, unnamedParse(buf, start, end));
        const { decision } = judgement;
        const sql = refusalStatement(
          `${decision.message}; as a named prepared statement it runs only through Bind and Execute, each execution approved`,
          `policy rule "${decision.rule}" on resource "${this.#options.resource}"`,
        );
        kept = { ...KEPT, frame: parse(name, sql) };
      }
    } else {
      const { statement } = decodeBind(buf, start, end);
      kept = {
        ...KEPT,
        frame: wholeFrame(type, buf, start, end),
        reviewBind: judgement,
        named: statement === '' ? null : statement,
      };
    }
    unit.frames.push(kept);
    unit.bytes += kept.frame.length;
    return NOTHING;
  }

  /** A client frame while a unit is kept back: kept with it, or the unit goes upstream first. */
  #inUnit(
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    judgement: Judgement | null,
  ): Buffer | null {
    const unit = this.#unit!;
    if (type === FrontendCode.Execute && judgement?.decision.action === 'review') {
      return this.#judged(type, buf, start, end, judgement);
    }
    if (
      (type === FrontendCode.Parse ||
        type === FrontendCode.Bind ||
        type === FrontendCode.Describe) &&
      unit.bytes + 5 + end - start <= this.#maxHeldBytes
    ) {
      const out = this.#judged(type, buf, start, end, judgement);
      if (out === NOTHING) return NOTHING; // a review statement's own frame, kept by #keep
      const frame = out ?? wholeFrame(type, buf, start, end);
      unit.frames.push({
        ...KEPT,
        frame,
        unnamedParse: type === FrontendCode.Parse && buf[start] === 0,
      });
      unit.bytes += frame.length;
      return NOTHING;
    }
    const released = this.#releaseUnit();
    const out = this.#judged(type, buf, start, end, judgement);
    if (out !== null && out.length === 0) return released;
    return Buffer.concat([released, out ?? wholeFrame(type, buf, start, end)]);
  }

  /**
   * A unit ends without an Execute of its statement: its frames go upstream, except that a Bind
   * of the statement is refused (with what follows it in the unit): the portal it made could
   * otherwise run the statement later without an approval.
   */
  #releaseUnit(): Buffer {
    const unit = this.#unit!;
    this.#unit = null;
    const out: Buffer[] = [];
    for (const kept of unit.frames) {
      if (kept.reviewBind !== null) {
        out.push(
          this.#refuseExecute(
            kept.reviewBind,
            `${kept.reviewBind.decision.message}; it needs an approval, which is asked for when it is executed: send its Execute in the same batch as its Bind`,
          ),
        );
        break;
      }
      if (kept.unnamedParse) this.#unnamedHolds = null;
      out.push(kept.frame);
    }
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  /**
   * The Execute of a review statement: held for approval with its unit, or refused at once
   * (no approvers, its batch already failed, or it cannot be run in order here).
   */
  #holdExecute(buf: Buffer, start: number, end: number, judgement: Judgement): Buffer {
    const unit = this.#unit;
    this.#unit = null;
    // The batch already failed upstream: the server skips this Execute; nothing to ask.
    if (this.#skipBatch === this.#tracker.syncs) return this.#refuseExecute(judgement, '');
    const plan = unit === null ? null : this.#planUnit(unit);
    if (plan === null) {
      this.#recordRequested(judgement, null);
      return this.#refuseExecute(
        judgement,
        `${judgement.decision.message}; it needs an approval that cannot be waited for here (its Bind was not sent in the same batch, or a named prepared statement is executed in the middle of a pipeline), so it was not run`,
      );
    }
    if (this.#holdForApproval(FrontendCode.Execute, buf, start, end, judgement, plan)) {
      return NOTHING;
    }
    this.#recordRequested(judgement, null);
    return this.#refuseExecute(judgement, cannotWait(judgement.decision.message));
  }

  /**
   * What goes upstream for a unit once its Execute is approved; null when it cannot go in
   * order. A named review statement runs as the unnamed one: when that does not hold its text
   * already, a Parse of it leads the unit, whose answer is dropped — only where the unit began
   * a batch, so that answer is the first ParseComplete after the batches before it.
   */
  #planUnit(unit: Unit): UnitPlan | null {
    const frames: Buffer[] = [];
    let holds = this.#unnamedHolds;
    let injected = false;
    let touched = false;
    for (const kept of unit.frames) {
      if (kept.unnamedParse) {
        holds = null;
        touched = true;
      }
      if (kept.named === null) {
        frames.push(kept.frame);
        continue;
      }
      if (holds !== kept.named) {
        const text = this.#namedReview.get(kept.named);
        if (text === undefined || touched || !unit.batchStart) return null;
        frames.unshift(text);
        injected = true;
        holds = kept.named;
      }
      touched = true;
      frames.push(rebindUnnamed(kept.frame));
    }
    return { frames, injected, holds };
  }

  /**
   * Holds a Query or an Execute for approval: nothing goes upstream, the client is told where
   * to approve it, and its later frames wait behind it. False when the rule names no approvers.
   */
  #holdForApproval(
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    judgement: Judgement,
    plan: UnitPlan | null,
  ): boolean {
    const request = this.#options.requestApproval;
    if (request === undefined) return false;
    const approval = request(judgement, (outcome) => this.#settled(outcome));
    if (approval === null) return false;
    this.#hold = {
      approval,
      frame: wholeFrame(type, buf, start, end),
      execute: plan === null ? null : { portal: decodeExecute(buf, start, end).portal, plan },
      judgement,
      sinceUs: nowUs(),
    };
    const { decision } = judgement;
    this.#recordRequested(judgement, approval.id);
    // Told once the request is stored, so the id it names is one every gateway can decide.
    void approval.stored.then((stored) => {
      if (!stored || this.#hold?.approval !== approval) return;
      this.#queueNotice(
        noticeResponse({
          severity: 'NOTICE',
          code: '01000',
          message: `statement awaits approval ${approval.id} (policy rule "${decision.rule}" on resource "${this.#options.resource}")`,
          hint: `an approver runs: portcullis approve ${approval.id} (or POST /v1/approvals/${approval.id}/approve on the gateway API)`,
        }),
      );
    });
    return true;
  }

  #recordRequested(judgement: Judgement, id: string | null): void {
    const { decision } = judgement;
    this.#recorder.approvalRequested({
      text: judgement.recordedText,
      kind: judgement.kind,
      rule: decision.rule,
      message: decision.message,
      ...(id === null ? {} : { id }),
    });
  }

  /** Sends the pending notice when the server stream is between frames. */
  #flushNotice(): void {
    if (this.#pendingNotice === null || this.#closing) return;
    const between =
      this.#serverForwarder === null
        ? this.#serverScanner.atBoundary || this.#splicer.holding
        : !this.#maskingOnWorker;
    if (!between) return;
    this.#bytesToClient += this.#pendingNotice.length;
    this.#client.write(this.#pendingNotice);
    this.#pendingNotice = null;
  }

  /**
   * The held statement was decided: recorded, then sent upstream as submitted (granted) or
   * replaced by a refusal, and the frames that waited behind it follow in order.
   */
  #settled(outcome: ApprovalOutcome): void {
    const hold = this.#hold;
    if (hold === null) return;
    this.#hold = null;
    this.#pendingNotice = null;
    // A request the gateway could not track ends like a withdrawn one: nobody decided it.
    const recorded = outcome.kind === 'failed' ? 'withdrawn' : outcome.kind;
    this.#recorder.approvalDecided(`approval.${recorded}`, {
      id: hold.approval.id,
      by: outcome.kind === 'granted' || outcome.kind === 'denied' ? outcome.by : [],
      reason: outcome.reason,
      waitedUs: nowUs() - hold.sinceUs,
    });
    if (this.#closing) return;
    const { decision } = hold.judgement;
    const hint = `policy rule "${decision.rule}" on resource "${this.#options.resource}"`;
    const refusal = approvalRefusal(outcome, decision.message);
    const out: Buffer[] = [];
    if (hold.execute === null) {
      out.push(
        refusal === null
          ? hold.frame
          : query(refusalStatement(refusal.message, hint, refusal.code)),
      );
    } else if (refusal === null) {
      const { portal, plan } = hold.execute;
      for (const frame of plan.frames) out.push(frame);
      out.push(hold.frame);
      // The unit began a batch and nothing after it went upstream: the answer to the Parse
      // leading it comes right after the ReadyForQuery of every batch before.
      if (plan.injected) this.#swallowAfter = this.#tracker.readies + this.#tracker.pendingReadies;
      if (plan.holds !== this.#unnamedHolds) {
        this.#unnamedHolds = plan.holds;
        // The client's later Binds of the unnamed statement run this text: judge them so.
        if (plan.holds !== null) this.#tracker.statementReplaced('', hold.judgement);
      }
      this.#tracker.approvePortal(portal);
    } else {
      // The whole unit is refused where it began, as if its first frame had failed.
      out.push(this.#refuseExecute(hold.judgement, refusal.message, refusal.code));
    }
    const waiting = this.#heldFrames.splice(0);
    this.#heldBytes = 0;
    try {
      for (const frame of waiting) {
        const replacement = this.#onClientFrame(frame[0]!, frame, 5, frame.length);
        if (replacement === null) out.push(frame);
        else if (replacement.length > 0) out.push(replacement);
      }
    } catch (err) {
      this.#protocolError(err, 'client');
      return;
    }
    this.#upstream.cork();
    let flowing = true;
    for (const part of out) flowing = this.#upstream.write(part);
    this.#upstream.uncork();
    if (!flowing) this.#upstreamBackedUp = true;
    if (!this.#upstreamBackedUp && this.#clientHolds === 0 && !this.#heldFull) {
      this.#client.resume();
    }
  }

  /**
   * The Execute sent upstream in place of a refused one (see RefusedExecutes): the server fails
   * it where the statement would have run, and the client gets `message` (with `code`) instead.
   * The rest of its batch is skipped upstream, so no Execute in it is held for approval.
   */
  #refuseExecute(judgement: Judgement, message: string, code = '42501'): Buffer {
    const { decision } = judgement;
    this.#skipBatch = this.#tracker.syncs;
    return this.#refused.refuse(
      errorResponse({
        severity: 'ERROR',
        code,
        message: message === '' ? decision.message : message,
        hint: `policy rule "${decision.rule}" on resource "${this.#options.resource}"`,
      }),
    );
  }

  /** A Query drops the upstream unnamed statement, and a Parse of it replaces it. */
  #unnamedMayChange(type: number, buf: Buffer, start: number): void {
    if (type === FrontendCode.Query || (type === FrontendCode.Parse && buf[start] === 0)) {
      this.#unnamedHolds = null;
    }
  }

  /**
   * The client sent a CancelRequest: a held statement is withdrawn (and fails with 57014 as a
   * cancelled one would). True when one was held.
   */
  cancelHeld(): boolean {
    if (this.#hold === null) return false;
    this.#hold.approval.withdraw('the client cancelled the statement');
    return true;
  }

  /**
   * The frame that goes upstream instead of a refused statement's Query, Parse or Bind: the
   * statement becomes one that raises the refusal (42501), and a Bind of it carries no
   * parameters, so the server answers in order and the session stays usable.
   */
  #refuse(
    type: number,
    buf: Buffer,
    start: number,
    end: number,
    judgement: Judgement,
  ): Buffer | null {
    const { decision } = judgement;
    const hint = `${judgement.refusedByMasking === true ? 'masking' : 'policy'} rule "${decision.rule}" on resource "${this.#options.resource}"`;
    if (type === FrontendCode.Bind) {
      const bound = decodeBind(buf, start, end);
      return bind(bound.portal, bound.statement);
    }
    if (decision.action === 'review') this.#recordRequested(judgement, null);
    const message = decision.action === 'review' ? cannotWait(decision.message) : decision.message;
    const sql = refusalStatement(message, hint);
    if (type === FrontendCode.Query) return query(sql);
    return parse(decodeParse(buf, start, end).name, sql);
  }

  #fromClient(chunk: Buffer): void {
    this.#bytesFromClient += chunk.length;
    const out = this.#clientOut;
    out.length = 0;
    try {
      this.#clientForwarder.push(chunk, out);
    } catch (err) {
      this.#protocolError(err, 'client');
      return;
    }
    let flowing = true;
    if (out.length === 1) {
      flowing = this.#upstream.write(out[0]!);
    } else if (out.length > 1) {
      this.#upstream.cork();
      for (const part of out) flowing = this.#upstream.write(part);
      this.#upstream.uncork();
    }
    if (!flowing) {
      this.#upstreamBackedUp = true;
      this.#client.pause();
    }
  }

  #fromUpstream(chunk: Buffer): void {
    this.#upstreamChunk = chunk;
    if (this.#serverForwarder !== null) {
      this.#fromUpstreamMasked(chunk, this.#serverForwarder);
      return;
    }
    if (this.#swallowAfter >= 0 || this.#refused.size > 0) {
      this.#fromUpstreamSpliced(chunk);
      return;
    }
    try {
      this.#serverScanner.push(chunk);
    } catch (err) {
      this.#protocolError(err, 'upstream');
      return;
    }
    this.#bytesToClient += chunk.length;
    this.#client.write(chunk);
    this.#afterUpstreamWrite();
  }

  /**
   * The non-masking path while a refusal (or a dropped ParseComplete) may come: as fast-path
   * forwarding, but a frame is kept back until whole, so it can be replaced (see ChunkSplicer).
   */
  #fromUpstreamSpliced(chunk: Buffer): void {
    const scanner = this.#serverScanner;
    const out = this.#splicedOut;
    out.length = 0;
    this.#splicer.begin(chunk, scanner.atBoundary, out);
    this.#serverHandler.onFrame = this.#scanFrameSpliced;
    try {
      scanner.push(chunk);
    } catch (err) {
      this.#protocolError(err, 'upstream');
      return;
    } finally {
      this.#serverHandler.onFrame = this.#scanFrame;
    }
    this.#splicer.finish(scanner.atBoundary, this.#splicing);
    const client = this.#client;
    if (out.length > 1) client.cork();
    for (const part of out) {
      this.#bytesToClient += part.length;
      client.write(part);
    }
    if (out.length > 1) client.uncork();
    out.length = 0;
    this.#afterUpstreamWrite();
  }

  /**
   * The masking path: only whole frames leave, each masked before any of its bytes do. Runs of
   * complete DataRows are masked as one batch into one output buffer (on a worker when the run
   * is large); the frames around them (the end of a frame begun in an earlier chunk,
   * RowDescription, CommandComplete, …) go through the forwarder one by one. What a chunk
   * yields leaves in one write.
   */
  #fromUpstreamMasked(chunk: Buffer, forwarder: FrameForwarder): void {
    if (this.#maskingOnWorker) {
      this.#waitingChunks.push(chunk);
      return;
    }
    const out = this.#serverOut;
    out.length = 0;
    const outcome = this.#maskChunk(chunk, forwarder, out);
    if (outcome !== FAILED) this.#sendPieces(out);
    out.length = 0;
    if (outcome === DONE) this.#afterUpstreamWrite();
  }

  /**
   * Masks `chunk` into `out`: {@link DONE}, {@link FAILED} (the session is ending), or
   * {@link ON_WORKER} when a worker took a run over (`out` holds what precedes it).
   */
  #maskChunk(chunk: Buffer, forwarder: FrameForwarder, out: Buffer[]): ChunkOutcome {
    let rest = chunk;
    try {
      // A short reply (a few rows) costs less frame by frame than cut into runs.
      if (chunk.length < BATCH_MIN_BYTES) {
        forwarder.push(chunk, out);
        return DONE;
      }
      for (;;) {
        const lead = forwarder.bytesToBoundary;
        const max = this.#options.maxFrameBytes;
        const runStart = lead < 0 ? -1 : firstDataRow(rest, lead, max);
        if (runStart < 0) break;
        if (runStart > 0) forwarder.push(rest.subarray(0, runStart), out);
        const runEnd = dataRowRun(rest, runStart, max);
        // The tracker sees the rows before the plan is read: the first DataRow of an Execute
        // without a RowDescription is what sets the plan.
        const tracker = this.#tracker;
        for (let pos = runStart; pos < runEnd;) {
          const length = rest.readInt32BE(pos + 1);
          tracker.serverFrame(BackendCode.DataRow, rest, pos + 5, pos + 1 + length, length - 4);
          pos += 1 + length;
        }
        const plan = tracker.plan;
        if (plan?.rows == null || !plan.active) {
          out.push(rest.subarray(runStart, runEnd));
        } else {
          const pool = this.#options.maskingPool ?? null;
          const threshold = this.#options.workerThresholdBytes ?? Infinity;
          if (pool !== null && plan.rowSpec != null && runEnd - runStart >= threshold) {
            this.#maskOnWorker(pool, plan, rest, runStart, runEnd, forwarder);
            return ON_WORKER;
          }
          const result = rewriteDataRows(rest, runStart, runEnd, plan.rows, false);
          out.push(this.#maskedRows(rest, runStart, runEnd, result));
        }
        if (runEnd === rest.length) return DONE;
        rest = rest.subarray(runEnd);
      }
      forwarder.push(rest, out);
      return DONE;
    } catch (err) {
      this.#protocolError(err, 'upstream');
      return FAILED;
    }
  }

  /**
   * The bytes to send for the masked run of DataRows `data[start, end)` (`data` itself where
   * nothing changed), with the masked values counted. Throws when the masking stopped short of
   * the run's end.
   */
  #maskedRows(data: Buffer, start: number, end: number, result: MaskedRows): Buffer {
    if (result.consumed !== end) {
      throw new Error(`masked ${result.consumed - start} of a ${end - start}-byte run of rows`);
    }
    if (result.maskedValues > 0) {
      this.#tracker.noteMasked(result.maskedValues, result.maskedColumns);
    }
    return result.output ?? data.subarray(start, end);
  }

  /** Sends `pieces` to the client in one write: copied into one buffer when short, else a writev. */
  #sendPieces(pieces: readonly Buffer[]): void {
    if (pieces.length === 0) return;
    const client = this.#client;
    if (pieces.length === 1) {
      this.#bytesToClient += pieces[0]!.length;
      client.write(pieces[0]!);
      return;
    }
    let total = 0;
    for (const part of pieces) total += part.length;
    this.#bytesToClient += total;
    if (total <= SMALL_WRITE_BYTES) {
      // A short reply spliced around masked rows: one copy is cheaper than a writev.
      client.write(Buffer.concat(pieces, total));
      return;
    }
    client.cork();
    for (const part of pieces) client.write(part);
    client.uncork();
  }

  /**
   * Masks the DataRows at `chunk[start, end)` on a worker. When they are the whole chunk, its
   * memory travels there and back, never copied; otherwise the run is copied first, because
   * frames of the chunk already written may still wait in the socket's queue. The session waits
   * meanwhile: upstream reads pause and chunks that still arrive queue behind this one, so rows
   * leave in order. If the worker fails, the session ends with an error before a byte of the
   * run is sent.
   */
  #maskOnWorker(
    pool: MaskingPool,
    plan: ResultPlan,
    chunk: Buffer,
    start: number,
    end: number,
    forwarder: FrameForwarder,
  ): void {
    this.#maskingOnWorker = true;
    this.#upstream.pause();
    const fault = this.#options.maskingFault?.();
    const after = chunk.subarray(end);
    pool
      .run({
        kind: 'rows',
        planId: plan.id,
        spec: plan.rowSpec!,
        chunk: chunk.subarray(start, end),
        start: 0,
        end: end - start,
        ...(fault === undefined ? {} : { testHook: fault }),
      })
      .then((result) => {
        if (this.#closing) return;
        this.#sendPieces([this.#maskedRows(result.chunk, 0, end - start, result)]);
        this.#maskingOnWorker = false;
        const waiting = this.#waitingChunks.splice(0);
        if (after.length > 0) {
          this.#fromUpstreamMasked(after, forwarder);
        } else {
          this.#afterUpstreamWrite();
        }
        for (const next of waiting) this.#fromUpstreamMasked(next, forwarder);
        if (!this.#maskingOnWorker && !this.#upstreamPaused && !this.#closing) {
          this.#upstream.resume();
        }
      })
      // A worker failure, or a fault while handling its result: fail closed either way.
      .catch((err: unknown) => {
        this.#maskingOnWorker = false;
        this.#waitingChunks.length = 0;
        this.#maskingFailed(err);
      });
  }

  /** Masking could not run: end the session before anything unmasked can leave. */
  #maskingFailed(err: unknown): void {
    if (this.#closing) return;
    this.#options.logger.error({ err }, 'masking failed; ending the session');
    const message = 'masking failed, so the session was ended before any unmasked value was sent';
    this.#reason = 'masking-failed';
    this.#endError = { code: SqlState.InternalError, message };
    this.#upstream.destroy();
    this.#closeBoth(
      fatal(SqlState.InternalError, message, 'retry; the gateway log has the details'),
    );
  }

  /** After forwarding upstream bytes: end an unreadable session, or apply backpressure. */
  #afterUpstreamWrite(): void {
    if (this.#pendingNotice !== null) this.#flushNotice();
    if (this.#unreadable !== null) {
      this.terminate(SqlState.FeatureNotSupported, this.#unreadable, 'unreadable-session-setting');
      return;
    }
    if (
      this.#client.writableLength > this.#options.clientWriteBufferBytes &&
      !this.#upstreamPaused
    ) {
      this.#upstreamPaused = true;
      this.#upstream.pause();
    }
  }

  #onStatement(record: StatementRecord): void {
    this.#statements++;
    this.#rows += record.rows;
    this.#recorder.statement(record);
    const hold = this.#options.onStatement?.(record) ?? null;
    if (hold !== null) {
      this.#clientHolds++;
      this.#client.pause();
      void hold.finally(() => {
        if (--this.#clientHolds === 0 && !this.#upstreamBackedUp) this.#client.resume();
      });
    }
  }

  /** A server setting changed (after SET): the session ends if the gateway can no longer read it. */
  #checkSetting(buf: Buffer, start: number, end: number): void {
    const { name, value } = decodeParameterStatus(buf, start, end);
    this.#unreadable ??= unreadableSetting(name, value);
  }

  /**
   * A NotificationResponse names the notifying backend's process id. When that is this
   * session's own upstream backend, the client must see the id it was given (its cancel key),
   * or clients that skip their own notifications (a documented libpq idiom) get them wrong.
   * The id is rewritten in place, same length, in the chunk about to be forwarded.
   */
  #rewriteNotifier(buf: Buffer, start: number, end: number): void {
    if (end - start < 4) return;
    if (buf !== this.#upstreamChunk) {
      // The frame spanned chunks and its start was forwarded already; rare, and harmless
      // except for that idiom.
      this.#options.logger.debug(
        {},
        'notification split across reads; notifier id left as the upstream one',
      );
      return;
    }
    if (buf.readInt32BE(start) === this.#options.processIds.upstream) {
      buf.writeInt32BE(this.#options.processIds.client, start);
    }
  }

  #protocolError(err: unknown, side: 'client' | 'upstream'): void {
    // Once closing, later chunks only repeat that the scanner failed: keep the first cause.
    if (this.#closing) return;
    const message = err instanceof Error ? err.message : String(err);
    this.#options.logger.warn({ err, side }, 'protocol error; closing session');
    this.#reason = side === 'client' ? 'protocol-error' : 'upstream-protocol-error';
    const tooLarge = isPortcullisError(err, 'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE');
    let notice: Buffer;
    if (isPortcullisError(err, 'PCL_ERR_SPOOL_FULL')) {
      this.#reason = 'events-refused';
      notice = fatal(EVENTS_REFUSED_SQLSTATE, message, EVENTS_REFUSED_HINT);
      this.#endError = { code: EVENTS_REFUSED_SQLSTATE, message };
    } else if (side === 'client') {
      notice = fatal(SqlState.ProtocolViolation, message);
      this.#endError = { code: SqlState.ProtocolViolation, message };
    } else if (tooLarge) {
      notice = fatal(
        SqlState.ProgramLimitExceeded,
        `the upstream server's reply is too large: ${message}`,
        'raise limits.maxFrameBytes in the gateway configuration',
      );
      this.#endError = { code: SqlState.ProgramLimitExceeded, message };
    } else {
      notice = fatal(
        SqlState.ConnectionFailure,
        'the upstream server sent an invalid message; session closed',
      );
      this.#endError = { code: SqlState.ConnectionFailure, message };
    }
    // The upstream's stream cannot be followed any more: drop it rather than read the rest.
    if (side === 'upstream') this.#upstream.destroy();
    this.#closeBoth(this.#serverScanner.atBoundary ? notice : null);
  }

  #onClientClosed(): void {
    this.#clientClosed = true;
    if (!this.#closing) this.#closeBoth(null);
    this.#finishWhenBothClosed();
  }

  #onUpstreamClosed(): void {
    this.#upstreamClosed = true;
    if (!this.#closing && this.#clientTerminated) {
      this.#closeBoth(null);
    } else if (!this.#closing) {
      this.#reason = 'upstream-lost';
      this.#endError = { code: SqlState.ConnectionFailure, message: 'upstream connection lost' };
      const notice = this.#serverScanner.atBoundary
        ? fatal(
            SqlState.ConnectionFailure,
            'connection to the upstream server was lost',
            'reconnect and retry',
          )
        : null;
      this.#closeBoth(notice);
    }
    this.#finishWhenBothClosed();
  }

  /** Closes both sides; the client gets `clientMessage` first when given. */
  #closeBoth(clientMessage: Buffer | null): void {
    this.#closing = true;
    this.#hold?.approval.withdraw(
      this.#reason === 'client-closed'
        ? 'the client disconnected'
        : `the session ended (${this.#reason})`,
    );
    if (!this.#upstream.destroyed) {
      if (this.#clientTerminated) this.#upstream.end();
      else if (this.#clientForwarder.atBoundary) this.#upstream.end(terminate);
      else this.#upstream.destroy();
    }
    if (!this.#client.destroyed) {
      if (clientMessage !== null) this.#client.end(clientMessage);
      else this.#client.end();
      // A client that never reads must not keep the socket open.
      this.#client.setTimeout(5_000, () => this.#client.destroy());
    }
  }

  #finishWhenBothClosed(): void {
    if (!this.#clientClosed || !this.#upstreamClosed) return;
    this.#recorder.end({
      reason: this.#reason,
      statements: this.#statements,
      rows: this.#rows,
      bytesFromClient: this.#bytesFromClient,
      bytesToClient: this.#bytesToClient,
      durationUs: nowUs() - this.#startedUs,
      error: this.#endError,
    });
    this.#options.onClose();
  }
}

/** How {@link PgRelay}'s masking of one upstream chunk ended. */
const DONE = 0;
const FAILED = 1;
const ON_WORKER = 2;
type ChunkOutcome = typeof DONE | typeof FAILED | typeof ON_WORKER;

/** What the gateway needs of a {@link DataRowsRewrite}, inline or from a worker. */
type MaskedRows = Pick<DataRowsRewrite, 'output' | 'consumed' | 'maskedValues' | 'maskedColumns'>;

/**
 * Start of the first complete DataRow among the complete frames of `chunk` from `from` (a frame
 * boundary); -1 when there is none before the chunk ends, or before a frame whose length is
 * wrong or over `maxBody` (the forwarder then reports it).
 */
function firstDataRow(chunk: Buffer, from: number, maxBody: number): number {
  for (let pos = from; pos + 5 <= chunk.length;) {
    const end = wholeFrameEnd(chunk, pos, maxBody);
    if (end < 0) return -1;
    if (chunk[pos] === BackendCode.DataRow) return pos;
    pos = end;
  }
  return -1;
}

/**
 * End of the run of complete DataRow frames in `chunk` from `from` (a frame boundary), stopping
 * before one whose length is wrong or over `maxBody`.
 */
function dataRowRun(chunk: Buffer, from: number, maxBody: number): number {
  let pos = from;
  while (pos + 5 <= chunk.length && chunk[pos] === BackendCode.DataRow) {
    const end = wholeFrameEnd(chunk, pos, maxBody);
    if (end < 0) break;
    pos = end;
  }
  return pos;
}

/** End of the frame whose header is at `chunk[pos]`; -1 when it is cut off, malformed or too long. */
function wholeFrameEnd(chunk: Buffer, pos: number, maxBody: number): number {
  const length = chunk.readInt32BE(pos + 1);
  const end = pos + 1 + length;
  return end > chunk.length || length < 4 || length - 4 > maxBody ? -1 : end;
}

const KEPT: Kept = { frame: NOTHING, unnamedParse: false, reviewBind: null, named: null };

/** `buf[start, end)`, a frame body, as a whole frame of its own (a copy). */
function wholeFrame(type: number, buf: Buffer, start: number, end: number): Buffer {
  const frame = Buffer.allocUnsafe(5 + end - start);
  frame[0] = type;
  frame.writeInt32BE(4 + end - start, 1);
  buf.copy(frame, 5, start, end);
  return frame;
}

/** A Parse body's statement, text and parameter types, as a Parse of the unnamed statement. */
function unnamedParse(buf: Buffer, start: number, end: number): Buffer {
  const nameEnd = buf.indexOf(0, start);
  return wholeFrame(FrontendCode.Parse, buf, nameEnd, end);
}

/** A whole Bind frame, bound to the unnamed statement instead of its named one. */
function rebindUnnamed(frame: Buffer): Buffer {
  const portalEnd = frame.indexOf(0, 5);
  const statementEnd = frame.indexOf(0, portalEnd + 1);
  const body = Buffer.concat([frame.subarray(5, portalEnd + 1), frame.subarray(statementEnd)]);
  return wholeFrame(FrontendCode.Bind, body, 0, body.length);
}

function cannotWait(message: string): string {
  return `${message}; it needs an approval that cannot be waited for here (the rule names no approvers), so it was not run`;
}
