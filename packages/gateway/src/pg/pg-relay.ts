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
  decodeParameterStatus,
  decodeParse,
  isFrontendCode,
  noticeResponse,
  parse,
  query,
  terminate,
} from '@portcullis/protocol-pg';
import { maskNoticeFields, rewriteCopyData, rewriteDataRow } from '@portcullis/masking';
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
import { refusalStatement } from './statement-judge.js';
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

/** A simple-protocol Query waiting for a decision (see PgRelay.#hold). */
interface Hold {
  readonly approval: HeldApproval;
  readonly frame: Buffer;
  readonly judgement: Judgement;
  readonly sinceUs: number;
}

const NOTHING = Buffer.alloc(0);

/** Replies up to this size that masking split into parts are joined into one write. */
const SMALL_WRITE_BYTES = 16 * 1024;

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
    this.#serverScanner = new FrameScanner(
      {
        onFrame: (type, buf, start, end, length) => {
          if (type === BackendCode.NotificationResponse) this.#rewriteNotifier(buf, start, end);
          else if (type === BackendCode.ParameterStatus) this.#checkSetting(buf, start, end);
          tracker.serverFrame(type, buf, start, end, length);
        },
      },
      {
        maxFrameBytes: options.maxFrameBytes,
        assemble: [...TRACKED_SERVER_FRAMES, BackendCode.ParameterStatus],
      },
    );
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
      default:
    }
    tracker.serverFrame(type, buf, start, end, length);
    return null;
  }

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
    const frame = noticeResponse({ severity: 'NOTICE', code: '01000', message });
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
      const frame = Buffer.allocUnsafe(5 + end - start);
      frame[0] = type;
      frame.writeInt32BE(4 + end - start, 1);
      buf.copy(frame, 5, start, end);
      this.#heldFrames.push(frame);
      this.#heldBytes += frame.length;
      if (this.#heldFull) this.#client.pause();
      return NOTHING;
    }
    if (type === FrontendCode.Terminate) this.#clientTerminated = true;
    const judgement = this.#tracker.clientFrame(type, buf, start, end);
    // A statement whose event could not be recorded must not run.
    if (judgement !== null && this.#options.eventsAccepting?.() === false) throw eventsRefused();
    if (type === FrontendCode.FunctionCall && this.#planner !== null) {
      // The server answers the refusal with ErrorResponse and ReadyForQuery, as it would a call.
      return query(refusalStatement(FUNCTION_CALL_REFUSED, `resource "${this.#options.resource}"`));
    }
    if (judgement === null || judgement.decision.action === 'allow') return null;
    if (type === FrontendCode.Query && judgement.decision.action === 'review') {
      if (this.#holdForApproval(buf, start, end, judgement)) return NOTHING;
    }
    return this.#refuse(type, buf, start, end, judgement);
  }

  /** True when the client's buffered frames reached the bound: its socket stays paused. */
  get #heldFull(): boolean {
    return this.#heldBytes > (this.#options.maxHeldBytes ?? this.#options.maxFrameBytes);
  }

  /**
   * Holds a simple-protocol Query for approval: nothing goes upstream, the client is told where
   * to approve it, and its later frames wait behind it. False when the rule names no approvers.
   */
  #holdForApproval(buf: Buffer, start: number, end: number, judgement: Judgement): boolean {
    const request = this.#options.requestApproval;
    if (request === undefined) return false;
    const approval = request(judgement, (outcome) => this.#settled(outcome));
    if (approval === null) return false;
    const frame = Buffer.allocUnsafe(5 + end - start);
    frame[0] = FrontendCode.Query;
    frame.writeInt32BE(4 + end - start, 1);
    buf.copy(frame, 5, start, end);
    this.#hold = { approval, frame, judgement, sinceUs: nowUs() };
    const { decision } = judgement;
    this.#recorder.approvalRequested({
      text: judgement.recordedText,
      kind: judgement.kind,
      rule: decision.rule,
      message: decision.message,
      id: approval.id,
    });
    this.#pendingNotice = noticeResponse({
      severity: 'NOTICE',
      code: '01000',
      message: `statement awaits approval ${approval.id} (policy rule "${decision.rule}" on resource "${this.#options.resource}")`,
      hint: `an approver runs: portcullis approve ${approval.id} (or POST /v1/approvals/${approval.id}/approve on the gateway API)`,
    });
    this.#flushNotice();
    return true;
  }

  /** Sends the pending notice when the server stream is between frames. */
  #flushNotice(): void {
    if (this.#pendingNotice === null || this.#closing) return;
    const between =
      this.#serverForwarder === null ? this.#serverScanner.atBoundary : !this.#maskingOnWorker;
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
    const out: Buffer[] = [];
    switch (outcome.kind) {
      case 'granted':
        out.push(hold.frame);
        break;
      case 'denied': {
        const by = outcome.by.map((p) => p.email).join(', ');
        const why = outcome.reason === '' ? '' : `: ${outcome.reason}`;
        out.push(query(refusalStatement(`${decision.message}; denied by ${by}${why}`, hint)));
        break;
      }
      case 'expired':
        out.push(
          query(
            refusalStatement(`${decision.message}; approval expired (${outcome.reason})`, hint),
          ),
        );
        break;
      case 'withdrawn':
        out.push(query(refusalStatement('canceling statement due to user request', hint, '57014')));
        break;
      case 'failed':
        out.push(
          query(
            refusalStatement(
              `${decision.message}; it was not run because its approval could not be tracked (${outcome.reason})`,
              hint,
            ),
          ),
        );
        break;
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
    if (decision.action === 'review') {
      this.#recorder.approvalRequested({
        text: judgement.recordedText,
        kind: judgement.kind,
        rule: decision.rule,
        message: decision.message,
      });
    }
    const message =
      decision.action === 'review'
        ? `${decision.message}; it needs an approval that cannot be waited for here (extended protocol, several gateway processes, or a rule without approvers), so it was not run`
        : decision.message;
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

  /** The masking path: only whole frames leave, each masked before any of its bytes do. */
  #fromUpstreamMasked(chunk: Buffer, forwarder: FrameForwarder): void {
    if (this.#maskingOnWorker) {
      this.#waitingChunks.push(chunk);
      return;
    }
    const pool = this.#options.maskingPool ?? null;
    const threshold = this.#options.workerThresholdBytes ?? Infinity;
    if (pool !== null && chunk.length >= threshold && this.#tracker.plan?.active === true) {
      // A socket read rarely starts at a frame boundary: finish the frame in progress inline,
      // then hand the run of whole DataRows after it to a worker.
      const lead = forwarder.bytesToBoundary;
      if (lead >= 0 && lead < chunk.length && dataRowRun(chunk, lead) - lead >= threshold) {
        if (lead > 0 && !this.#forwardMasked(chunk.subarray(0, lead), forwarder)) return;
        const plan = this.#tracker.plan;
        const run = dataRowRun(chunk, lead);
        if (plan?.rowSpec != null && plan.active && run - lead >= threshold) {
          this.#maskOnWorker(pool, plan, chunk, lead, run, forwarder);
          return;
        }
        if (lead > 0) chunk = chunk.subarray(lead);
      }
    }
    if (this.#forwardMasked(chunk, forwarder)) this.#afterUpstreamWrite();
  }

  /** Forwards `chunk` through the masking forwarder inline; false when the session failed. */
  #forwardMasked(chunk: Buffer, forwarder: FrameForwarder): boolean {
    const out = this.#serverOut;
    out.length = 0;
    try {
      forwarder.push(chunk, out);
    } catch (err) {
      out.length = 0;
      this.#protocolError(err, 'upstream');
      return false;
    }
    const client = this.#client;
    if (out.length === 1) {
      this.#bytesToClient += out[0]!.length;
      client.write(out[0]!);
      return true;
    }
    let total = 0;
    for (const part of out) total += part.length;
    this.#bytesToClient += total;
    if (total <= SMALL_WRITE_BYTES) {
      // A short reply spliced around a masked row: one copy is cheaper than a writev.
      client.write(Buffer.concat(out, total));
      return true;
    }
    client.cork();
    for (const part of out) client.write(part);
    client.uncork();
    return true;
  }

  /**
   * Masks the DataRows at `chunk[start, end)` on a worker (the chunk's memory travels there and back,
   * never copied). The session waits meanwhile: upstream reads pause and chunks that still
   * arrive queue behind this one, so rows leave in order and the tracker sees them in order.
   * If the worker fails, the session ends with an error before a byte of the run is sent.
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
    pool
      .run({
        kind: 'rows',
        planId: plan.id,
        spec: plan.rowSpec!,
        chunk,
        start,
        end,
        ...(fault === undefined ? {} : { testHook: fault }),
      })
      .then((result) => {
        if (this.#closing) return;
        const data = result.chunk;
        const tracker = this.#tracker;
        for (let pos = start; pos < result.consumed;) {
          const length = data.readInt32BE(pos + 1);
          tracker.serverFrame(BackendCode.DataRow, data, pos + 5, pos + 1 + length, length - 4);
          pos += 1 + length;
        }
        if (result.maskedValues > 0) tracker.noteMasked(result.maskedValues, result.maskedColumns);
        const masked = result.output ?? data.subarray(start, result.consumed);
        this.#bytesToClient += masked.length;
        this.#client.write(masked);
        this.#maskingOnWorker = false;
        const waiting = this.#waitingChunks.splice(0);
        if (result.consumed < data.length) {
          this.#fromUpstreamMasked(data.subarray(result.consumed), forwarder);
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

/** End of the run of complete DataRow frames in `chunk` from `from` (a frame boundary). */
function dataRowRun(chunk: Buffer, from: number): number {
  let pos = from;
  while (pos + 5 <= chunk.length && chunk[pos] === BackendCode.DataRow) {
    const end = pos + 1 + chunk.readInt32BE(pos + 1);
    if (end > chunk.length || end < pos + 5) break;
    pos = end;
  }
  return pos;
}
