import { PortcullisError } from '@portcullis/core';
import type { ContentDetector } from './content-detector.js';
import { MAX_MASK_GROWTH, type Masker } from './create-masker.js';
import { HmacBatch } from './hmac-batch.js';
import { Op, type RowPlan } from './row-plan.js';
import { chunkWords, OutputWriter } from './output-writer.js';
import { jsonStringMaxLength, writeJsonString } from './write-json-string.js';

/** A DataRow that masking changed. Counts only: the values themselves are never reported. */
export interface DataRowRewrite {
  /** The complete new frame: type byte `D`, Int32 length, body. */
  readonly frame: Buffer;
  /** Values whose bytes changed. */
  readonly maskedValues: number;
  /** Indexes of the columns with a changed value, ascending. */
  readonly maskedColumns: readonly number[];
}

/** The outcome of rewriting a chunk of frames with {@link rewriteDataRows}. */
export interface DataRowsRewrite {
  /**
   * The frames of `[start, consumed)` with masked DataRows replaced, as one new Buffer of its
   * own (an unpooled ArrayBuffer at offset 0, possibly longer than `output.length`, so it can be
   * transferred to another thread); `null` when no frame changed, so the input can be forwarded
   * as it is.
   */
  readonly output: Buffer | null;
  /** End of the frames handled; less than `end` at an incomplete frame or one the batch leaves to the caller. */
  readonly consumed: number;
  /** Frames handled. */
  readonly frames: number;
  /** DataRows replaced. */
  readonly rewrittenFrames: number;
  /** Values whose bytes changed. */
  readonly maskedValues: number;
  /** Indexes of the columns with a changed value, ascending. */
  readonly maskedColumns: readonly number[];
}

const DATA_ROW = 0x44;

// The plan's operations as module constants: a `const enum` imported under isolated modules is
// a property load each time it is read, and these are read per value.
const NONE: number = Op.None;
const NULL: number = Op.Null;
const RULE: number = Op.Rule;
const RULE_JSON: number = Op.RuleJson;
const RULE_JSONB: number = Op.RuleJsonb;
const DETECT: number = Op.Detect;
const DETECT_JSONB: number = Op.DetectJsonb;

/**
 * Frame types a chunk rewrite passes through unchanged: they carry no row values
 * (CommandComplete, ReadyForQuery, EmptyQueryResponse, PortalSuspended, ParseComplete,
 * BindComplete, CloseComplete, NoData). Any other type ends the batch: a RowDescription needs a
 * new plan, and errors, notices, notifications and COPY data have their own rewriters.
 */
const PASS_THROUGH = new Uint8Array(256);
for (const c of 'CZIs123n') PASS_THROUGH[c.charCodeAt(0)] = 1;

/**
 * The batch that computes hash pseudonyms four at a time, while {@link rewriteDataRows} runs
 * (it flushes the batch into its output before returning); null elsewhere, where each value is
 * hashed as it is written.
 */
let macs: HmacBatch | null = null;

// Scratch for json-wrapped rule output.
let scratch = new Uint8Array(256);

/**
 * Masks one DataRow. `body[start, end)` is the frame's body (column count, then per column an
 * Int32 length, -1 for NULL, and the bytes), as the FrameScanner hands it out. Returns `null`
 * when no value changed (nothing is copied), else a new complete frame.
 *
 * A row whose column count differs from the plan's, or whose lengths run past the body, throws
 * `PCL_ERR_PROTOCOL_MALFORMED`: forwarding it unmasked could leak, and the stream is broken.
 */
export function rewriteDataRow(
  body: Uint8Array,
  start: number,
  end: number,
  plan: RowPlan,
): DataRowRewrite | null {
  if (plan.lastActive < 0) return null;
  const writer = new OutputWriter(body, start, end - start + 64, false);
  // Room for the type byte and the length, filled in once the row has changed.
  writer.pos = writer.base + 5;
  const maskedValues = rewriteRow(body, start, end, plan, writer, -1);
  if (maskedValues === 0) return null;
  return { frame: writer.result(), maskedValues, maskedColumns: plan.takeSharedHits() };
}

/**
 * Masks every DataRow among the complete frames in `chunk[start, end)` (whole frames with their
 * type bytes, as read from the upstream socket). Frames listed in {@link PASS_THROUGH} are kept;
 * the batch stops at an incomplete frame or any other type and reports where in `consumed`.
 * Unchanged frames are copied as ranges into the output, never one by one; nothing is copied
 * when no frame changes. The function touches nothing but its arguments, so the gateway may run
 * it inline or in a worker on a transferred buffer.
 *
 * @param transferable - give the output an ArrayBuffer of its own (the default, for a worker
 *   to hand back); false lets a small output share Node's pool or the masking slab.
 */
export function rewriteDataRows(
  chunk: Uint8Array,
  start: number,
  end: number,
  plan: RowPlan,
  transferable = true,
): DataRowsRewrite {
  macs = plan.lastActive >= 0 ? HmacBatch.shared() : null;
  try {
    return rewriteRows(chunk, start, end, plan, transferable);
  } finally {
    // After a failure the queued pseudonyms go with the output they were for.
    macs?.clear();
    macs = null;
  }
}

/** {@link rewriteDataRows} itself, with {@link macs} set for the call. */
function rewriteRows(
  chunk: Uint8Array,
  start: number,
  end: number,
  plan: RowPlan,
  transferable: boolean,
): DataRowsRewrite {
  const active = plan.lastActive >= 0;
  const initial = end - start + ((end - start) >> 3) + 1024;
  const writer = new OutputWriter(chunk, start, initial, transferable);
  let pos = start;
  let frames = 0;
  let rewrittenFrames = 0;
  let maskedValues = 0;
  const view = chunkWords.of(chunk);
  while (pos + 5 <= end) {
    const type = chunk[pos]!;
    const length = view.getInt32(pos + 1);
    if (length < 4) malformed(`frame length ${length}`);
    const frameEnd = pos + 1 + length;
    if (frameEnd > end) break;
    if (type === DATA_ROW) {
      if (active) {
        const masked = rewriteRow(chunk, pos + 5, frameEnd, plan, writer, pos);
        if (masked > 0) {
          rewrittenFrames++;
          maskedValues += masked;
        }
      }
    } else if (PASS_THROUGH[type] !== 1) {
      break;
    }
    frames++;
    pos = frameEnd;
  }
  const maskedColumns = active ? plan.takeHits() : [];
  if (rewrittenFrames === 0) {
    return { output: null, consumed: pos, frames, rewrittenFrames, maskedValues, maskedColumns };
  }
  macs?.flush(writer.buf);
  writer.copyTo(pos);
  return {
    output: writer.result(),
    consumed: pos,
    frames,
    rewrittenFrames,
    maskedValues,
    maskedColumns,
  };
}

function malformed(what: string): never {
  throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', `malformed DataRow: ${what}`);
}

/**
 * Rewrites one row into `w` when a value changes; returns the number of changed values (0: the
 * writer is left as it was). `frameStart` is the frame's type byte in `src` (chunk mode: bytes
 * before it are pending copies), or -1 when `src` holds the body alone (a `D` header is
 * written).
 *
 * In chunk mode the row's unchanged bytes stay pending: the bytes between two masked values,
 * frame headers included, go over as one run, and the frame's length field, copied with its
 * run, is patched once the row's new length is known.
 */
function rewriteRow(
  src: Uint8Array,
  start: number,
  end: number,
  plan: RowPlan,
  w: OutputWriter,
  frameStart: number,
): number {
  if (end - start < 2) malformed('no column count');
  const view = chunkWords.of(src);
  const count = view.getUint16(start);
  if (count !== plan.columnCount) {
    malformed(`${count} columns where the result set has ${plan.columnCount}`);
  }
  const ops = plan.ops;
  const last = plan.lastActive;
  let changed = 0;
  // Output position of the frame's length field, once the first change fixes it.
  let lengthAt = -1;
  const savedPos = w.pos;
  const savedPending = w.pending;
  let p = start + 2;
  for (let col = 0; col <= last; col++) {
    if (p + 4 > end) malformed('truncated column length');
    const length = view.getInt32(p);
    const vs = p + 4;
    if (length === -1) {
      p = vs;
      continue;
    }
    const ve = vs + length;
    if (length < -1 || ve > end) malformed(`column length ${length}`);
    const op = ops[col]!;
    if (op === NONE) {
      p = ve;
      continue;
    }
    const outLength =
      op === RULE
        ? writeWithMasker(src, vs, ve, plan.maskers[col]!, w, p)
        : maskValue(src, vs, ve, plan, col, op, w, p);
    if (outLength === NO_CHANGE) {
      p = ve;
      continue;
    }
    if (lengthAt < 0) {
      // Chunk mode: the pending run just copied reaches back over this frame's header, so its
      // length field sits at a known distance before the value. Body mode: after the `D`.
      lengthAt = frameStart >= 0 ? w.pos - (p - frameStart - 1) : w.base + 1;
    }
    const at = w.pos;
    w.int32At(at, outLength);
    w.pos = at + 4 + Math.max(outLength, 0);
    w.pending = ve;
    plan.hit[col] = 1;
    changed++;
    p = ve;
  }
  if (changed === 0) {
    w.pos = savedPos;
    w.pending = savedPending;
    return 0;
  }
  if (frameStart < 0) {
    w.copyTo(end);
    w.buf[w.base] = DATA_ROW;
  }
  w.int32At(lengthAt, w.pos + (end - w.pending) - lengthAt);
  return changed;
}

/** {@link maskValue}'s answer when the value stays as it is. */
const NO_CHANGE = -2;

/**
 * Copies the pending input up to the value's length field at `p`, then writes the masked value
 * after room for that field; returns its length (-1 for NULL) or {@link NO_CHANGE}, in which
 * case nothing but the pending run was written. Plain rules, the common case, skip this and go
 * to {@link writeWithMasker} directly (one call less per value).
 */
function maskValue(
  src: Uint8Array,
  vs: number,
  ve: number,
  plan: RowPlan,
  col: number,
  op: number,
  w: OutputWriter,
  p: number,
): number {
  const length = ve - vs;
  const detector = plan.detector;
  // Binary jsonb: a version byte, then the JSON text.
  const jsonb = (op === DETECT_JSONB || op === RULE_JSONB) && length > 0 ? 1 : 0;
  if (op >= DETECT) {
    const found = detector!.scan(src, vs + jsonb, ve, plan.hints[col]!);
    plan.hints[col] = detector!.covering;
    if (found === 0) return NO_CHANGE;
    // One finding covering the value: its masker writes it, as writeMasked would.
    const masker = op === DETECT ? detector!.coveringMasker : null;
    if (masker !== null && !masker.nulls) return writeWithMasker(src, vs, ve, masker, w, p);
  }
  w.copyTo(p);
  w.ensure(4);
  const at = w.pos;
  switch (op) {
    case NULL:
      return -1;
    case RULE_JSON:
    case RULE_JSONB: {
      const masker = plan.maskers[col]!;
      const max = masker.maxOutput(length);
      if (scratch.length < max) scratch = new Uint8Array(Math.max(max, scratch.length * 2));
      const n = masker.write(src, vs + jsonb, ve, scratch, 0);
      w.ensure(4 + 1 + jsonStringMaxLength(n));
      if (op === RULE_JSONB) w.buf[at + 4] = 1;
      const outLength =
        writeJsonString(scratch, 0, n, w.buf, at + 4 + (op === RULE_JSONB ? 1 : 0)) - at - 4;
      return unlessSame(src, vs, length, w, at, outLength);
    }
    default:
      return writeDetected(src, vs, ve, jsonb, op, detector!, w, at);
  }
}

/** As {@link maskValue}, for a value that `masker` writes whole (a rule, or a covering finding). */
function writeWithMasker(
  src: Uint8Array,
  vs: number,
  ve: number,
  masker: Masker,
  w: OutputWriter,
  p: number,
): number {
  w.copyTo(p);
  const length = ve - vs;
  // A bound that holds for every masker: asking this one is a call that dispatches on its class.
  w.ensure(4 + length + MAX_MASK_GROWTH);
  const at = w.pos;
  // A pseudonym written later cannot be compared; it never equals its value anyway.
  if (macs !== null && masker.writeLater !== undefined) {
    return masker.writeLater(macs, src, vs, ve, w.buf, at + 4) - at - 4;
  }
  const outLength = masker.write(src, vs, ve, w.buf, at + 4) - at - 4;
  return unlessSame(src, vs, length, w, at, outLength);
}

/** Masking that left the value as it was (`****` redacted) is no change. */
function unlessSame(
  src: Uint8Array,
  vs: number,
  length: number,
  w: OutputWriter,
  at: number,
  outLength: number,
): number {
  if (outLength === length && sameBytes(src, vs, w.buf, at + 4, length)) return NO_CHANGE;
  return outLength;
}

/** The detector's findings in `src[vs, ve)` written after the length field at `at`. */
function writeDetected(
  src: Uint8Array,
  vs: number,
  ve: number,
  jsonb: number,
  op: number,
  detector: ContentDetector,
  w: OutputWriter,
  at: number,
): number {
  const length = ve - vs;
  w.ensure(4 + jsonb + detector.maxOutput(length));
  if (jsonb === 1) w.buf[at + 4] = src[vs]!;
  const stop = detector.writeMasked(
    src,
    vs + jsonb,
    ve,
    w.buf,
    at + 4 + jsonb,
    true,
    op !== DETECT,
  );
  if (stop < 0) return -1;
  return unlessSame(src, vs, length, w, at, stop - at - 4);
}

function sameBytes(a: Uint8Array, as: number, b: Uint8Array, bs: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}
