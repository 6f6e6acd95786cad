import { PortcullisError } from '@portcullis/core';
import type { ContentDetector } from './content-detector.js';
import { OutputWriter } from './output-writer.js';
import { compileRowPlan, Op, type RowPlan, type RowPlanSpec } from './row-plan.js';
import { jsonStringMaxLength, writeJsonString } from './write-json-string.js';

/**
 * What to mask in a `COPY … TO STDOUT` in text or CSV format: the column actions of a
 * {@link RowPlanSpec} (formats are ignored: COPY text and CSV are text throughout) and the
 * COPY options the statement used. Binary COPY is not supported: the gateway must refuse it
 * when a column is to be masked.
 */
export interface CopyPlanSpec extends Omit<RowPlanSpec, 'columns'> {
  /** The COPY format (`FORMAT text` or `FORMAT csv`). */
  readonly format: 'text' | 'csv';
  /** Column type OIDs when known (they only steer `detect`, see {@link compileRowPlan}). */
  readonly typeOids?: readonly number[];
  /** One-byte field delimiter; a tab for text, a comma for CSV by default. */
  readonly delimiter?: string;
  /** The NULL marker; `\N` for text, an unquoted empty field for CSV by default. */
  readonly null?: string;
  /** CSV quote character, `"` by default. */
  readonly quote?: string;
  /** CSV escape character, the quote by default. */
  readonly escape?: string;
}

/** A compiled {@link CopyPlanSpec}. */
export interface CopyPlan {
  /** The column operations, compiled as for DataRows (all columns in text format). */
  readonly rows: RowPlan;
  /** CSV rather than text format. */
  readonly csv: boolean;
  /** Field delimiter byte. */
  readonly delimiter: number;
  /** CSV quote byte (0 for text). */
  readonly quote: number;
  /** CSV escape byte; a backslash for text. */
  readonly escape: number;
  /** The bytes that stand for NULL. */
  readonly nullMarker: Uint8Array;
}

/** A CopyData message that masking changed (counts only, never values). */
export interface CopyDataRewrite {
  /** The complete new frame: type byte `d`, Int32 length, the rows. */
  readonly frame: Buffer;
  /** Values whose bytes changed. */
  readonly maskedValues: number;
  /** Indexes of the columns with a changed value, ascending. */
  readonly maskedColumns: readonly number[];
}

/** Options of {@link rewriteCopyData}. */
export interface CopyDataOptions {
  /** The message's first row is the CSV header line (COPY … HEADER): left alone. */
  readonly header?: boolean;
}

function oneByte(text: string, what: string, backslash = false): number {
  const bytes = Buffer.from(text, 'utf8');
  const b = bytes[0];
  if (bytes.length !== 1 || b === 0x0a || b === 0x0d || (b === 0x5c && !backslash)) {
    throw new PortcullisError('PCL_ERR_CONFIG_INVALID', `COPY ${what} must be one byte`);
  }
  return bytes[0]!;
}

/** Compiles a COPY plan; bad options throw `PCL_ERR_CONFIG_INVALID`. */
export function compileCopyPlan(spec: CopyPlanSpec, detector?: ContentDetector): CopyPlan {
  const csv = spec.format === 'csv';
  const columns = spec.actions.map((_, i) => ({
    typeOid: spec.typeOids?.[i] ?? 0,
    format: 0 as const,
  }));
  const rows = compileRowPlan({ ...spec, columns }, detector);
  const quote = csv ? oneByte(spec.quote ?? '"', 'quote') : 0;
  return {
    rows,
    csv,
    delimiter: oneByte(spec.delimiter ?? (csv ? ',' : '\t'), 'delimiter'),
    quote,
    escape: csv ? (spec.escape === undefined ? quote : oneByte(spec.escape, 'escape', true)) : 0x5c,
    nullMarker: new Uint8Array(Buffer.from(spec.null ?? (csv ? '' : '\\N'), 'utf8')),
  };
}

const NEWLINE = 0x0a;
const BACKSLASH = 0x5c;

// Field table of the current row and two scratch buffers (decoded value, masked value).
let fieldStart = new Int32Array(64);
let fieldEnd = new Int32Array(64);
let fieldQuoted = new Uint8Array(64);
let decoded = new Uint8Array(1024);
let masked = new Uint8Array(1024);

/**
 * Masks the rows of one CopyData message body `body[start, end)` (PostgreSQL sends one row per
 * message; several whole rows work too). Text format: fields split by the delimiter, `\N` (or
 * the configured marker) for NULL, backslash escapes decoded before masking and applied again
 * after. CSV: quoted fields decoded, NULL as an unquoted empty field (or the marker), masked
 * values quoted when they need it or were quoted before. Returns `null` when nothing changed.
 * A row with a different column count throws `PCL_ERR_PROTOCOL_MALFORMED`.
 */
export function rewriteCopyData(
  body: Uint8Array,
  start: number,
  end: number,
  plan: CopyPlan,
  options: CopyDataOptions = {},
): CopyDataRewrite | null {
  const rows = plan.rows;
  if (rows.lastActive < 0) return null;
  const w = new OutputWriter(body, start, end - start + 64, false);
  let opened = false;
  let changed = 0;
  let pos = start;
  let skip = options.header === true;
  while (pos < end) {
    const count = plan.csv ? splitCsv(body, pos, end, plan) : splitText(body, pos, end, plan);
    const rowEnd = fieldEnd[count - 1]!;
    const next = rowEnd < end && body[rowEnd] === NEWLINE ? rowEnd + 1 : rowEnd;
    if (skip) {
      skip = false;
      pos = next;
      continue;
    }
    if (count !== rows.columnCount) {
      throw new PortcullisError(
        'PCL_ERR_PROTOCOL_MALFORMED',
        `COPY row has ${count} fields where the result has ${rows.columnCount}`,
      );
    }
    for (let col = 0; col <= rows.lastActive; col++) {
      const op = rows.ops[col]!;
      if (op === Op.None) continue;
      const fs = fieldStart[col]!;
      const fe = fieldEnd[col]!;
      const quoted = fieldQuoted[col] === 1;
      if (!quoted && equals(body, fs, fe, plan.nullMarker)) continue;
      const n = maskField(body, fs, fe, quoted, plan, col, op);
      if (n === -2) continue;
      if (!opened) {
        w.byte(0x64);
        w.int32(0);
        w.pending = start;
        opened = true;
      }
      w.copyTo(fs);
      const at = w.pos;
      if (n === -1) writeRaw(w, plan.nullMarker, 0, plan.nullMarker.length);
      else if (plan.csv) writeCsv(w, n, quoted, plan);
      else writeText(w, n, plan);
      if (w.pos - at === fe - fs && sameBytes(body, fs, w.buf, at, fe - fs)) {
        // Masking left the field as it was: not a change.
        w.pos = at;
        continue;
      }
      w.pending = fe;
      rows.hit[col] = 1;
      changed++;
    }
    pos = next;
  }
  if (changed === 0) {
    rows.takeHits();
    return null;
  }
  w.copyTo(end);
  const frame = w.result();
  frame.writeInt32BE(frame.length - 1, 1);
  return { frame, maskedValues: changed, maskedColumns: rows.takeSharedHits() };
}

function grow(count: number): void {
  if (count < fieldStart.length) return;
  const size = fieldStart.length * 2;
  const s = new Int32Array(size);
  const e = new Int32Array(size);
  const q = new Uint8Array(size);
  s.set(fieldStart);
  e.set(fieldEnd);
  q.set(fieldQuoted);
  fieldStart = s;
  fieldEnd = e;
  fieldQuoted = q;
}

/** Splits one text-format row starting at `pos` into fields; returns the field count. */
function splitText(src: Uint8Array, pos: number, end: number, plan: CopyPlan): number {
  const delimiter = plan.delimiter;
  let count = 0;
  let fs = pos;
  let i = pos;
  for (;;) {
    const b = i < end ? src[i]! : NEWLINE;
    if (b === BACKSLASH && i + 1 < end) {
      i += 2;
      continue;
    }
    if (b === delimiter || b === NEWLINE) {
      grow(count);
      fieldStart[count] = fs;
      fieldEnd[count] = Math.min(i, end);
      fieldQuoted[count] = 0;
      count++;
      if (b === NEWLINE) return count;
      fs = i + 1;
    }
    i++;
  }
}

/** Splits one CSV row starting at `pos` (quoted fields may hold newlines). */
function splitCsv(src: Uint8Array, pos: number, end: number, plan: CopyPlan): number {
  const { delimiter, quote, escape } = plan;
  let count = 0;
  let i = pos;
  for (;;) {
    const fs = i;
    let quoted = false;
    if (i < end && src[i] === quote) {
      quoted = true;
      i++;
      while (i < end) {
        const b = src[i]!;
        // Escape + quote or escape is a literal (with escape = quote: a doubled quote).
        if (b === escape && i + 1 < end && (src[i + 1] === quote || src[i + 1] === escape)) {
          i += 2;
        } else if (b === quote) {
          i++;
          break;
        } else i++;
      }
    }
    while (i < end && src[i] !== delimiter && src[i] !== NEWLINE) i++;
    grow(count);
    fieldStart[count] = fs;
    fieldEnd[count] = i;
    fieldQuoted[count] = quoted ? 1 : 0;
    count++;
    if (i >= end || src[i] === NEWLINE) return count;
    i++;
  }
}

/**
 * Decodes field `src[fs, fe)` into `decoded`, masks it into `masked`; returns the masked length,
 * -1 for NULL, -2 when the detectors found nothing.
 */
function maskField(
  src: Uint8Array,
  fs: number,
  fe: number,
  quoted: boolean,
  plan: CopyPlan,
  col: number,
  op: number,
): number {
  if (op === Op.Null) return -1;
  let value = src;
  let vs = fs;
  let ve = fe;
  if (plan.csv ? quoted : indexOf(src, BACKSLASH, fs, fe) >= 0) {
    ve = plan.csv ? decodeCsv(src, fs, fe, plan) : decodeText(src, fs, fe);
    value = decoded;
    vs = 0;
  }
  const rows = plan.rows;
  if (op === Op.Detect || op === Op.DetectJson) {
    const detector = rows.detector!;
    const found = detector.scan(value, vs, ve, rows.hints[col]!);
    rows.hints[col] = detector.covering;
    if (found === 0) return -2;
    ensureMasked(detector.maxOutput(ve - vs));
    return detector.writeMasked(value, vs, ve, masked, 0, true, op === Op.DetectJson);
  }
  const masker = rows.maskers[col]!;
  const max = masker.maxOutput(ve - vs);
  if (op === Op.RuleJson) {
    const tmp = new Uint8Array(max);
    const n = masker.write(value, vs, ve, tmp, 0);
    ensureMasked(jsonStringMaxLength(n));
    return writeJsonString(tmp, 0, n, masked, 0);
  }
  ensureMasked(max);
  return masker.write(value, vs, ve, masked, 0);
}

function ensureMasked(n: number): void {
  if (masked.length < n) masked = new Uint8Array(Math.max(n, masked.length * 2));
}

function ensureDecoded(n: number): void {
  if (decoded.length < n) decoded = new Uint8Array(Math.max(n, decoded.length * 2));
}

const TEXT_ESCAPES: Record<number, number> = {
  0x62: 0x08, // \b
  0x66: 0x0c, // \f
  0x6e: 0x0a, // \n
  0x72: 0x0d, // \r
  0x74: 0x09, // \t
  0x76: 0x0b, // \v
};

function hexValue(b: number | undefined): number {
  if (b === undefined) return -1;
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const l = b | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

/** COPY text de-escaping (PostgreSQL's CopyReadAttributesText rules). */
function decodeText(src: Uint8Array, fs: number, fe: number): number {
  ensureDecoded(fe - fs);
  let n = 0;
  let i = fs;
  while (i < fe) {
    const b = src[i++]!;
    if (b !== BACKSLASH || i >= fe) {
      decoded[n++] = b;
      continue;
    }
    const c = src[i++]!;
    if (c >= 0x30 && c <= 0x37) {
      let v = c - 0x30;
      for (let k = 0; k < 2 && i < fe && src[i]! >= 0x30 && src[i]! <= 0x37; k++) {
        v = v * 8 + src[i++]! - 0x30;
      }
      decoded[n++] = v & 0xff;
    } else if (c === 0x78 && hexValue(src[i]) >= 0 && i < fe) {
      let v = hexValue(src[i++]);
      if (i < fe && hexValue(src[i]) >= 0) v = v * 16 + hexValue(src[i++]);
      decoded[n++] = v;
    } else {
      decoded[n++] = TEXT_ESCAPES[c] ?? c;
    }
  }
  return n;
}

/** Removes CSV quoting from a quoted field. */
function decodeCsv(src: Uint8Array, fs: number, fe: number, plan: CopyPlan): number {
  ensureDecoded(fe - fs);
  const { quote, escape } = plan;
  let n = 0;
  let i = fs + 1;
  while (i < fe) {
    const b = src[i]!;
    if (b === escape && i + 1 < fe && (src[i + 1] === quote || src[i + 1] === escape)) {
      decoded[n++] = src[i + 1]!;
      i += 2;
    } else if (b === quote) {
      break;
    } else {
      decoded[n++] = b;
      i++;
    }
  }
  return n;
}

const TEXT_OUT: Record<number, number> = {
  0x08: 0x62,
  0x0c: 0x66,
  0x0a: 0x6e,
  0x0d: 0x72,
  0x09: 0x74,
  0x0b: 0x76,
};

/** Writes `masked[0, n)` with COPY text escaping. */
function writeText(w: OutputWriter, n: number, plan: CopyPlan): void {
  w.ensure(2 * n);
  const buf = w.buf;
  let pos = w.pos;
  for (let i = 0; i < n; i++) {
    const b = masked[i]!;
    const letter = TEXT_OUT[b];
    // Control characters first, as PostgreSQL does: a tab delimiter is written as `\t`.
    if (letter !== undefined) {
      buf[pos++] = BACKSLASH;
      buf[pos++] = letter;
    } else if (b === BACKSLASH || b === plan.delimiter) {
      buf[pos++] = BACKSLASH;
      buf[pos++] = b;
    } else buf[pos++] = b;
  }
  w.pos = pos;
}

/** Writes `masked[0, n)` as a CSV field, quoted when it was or when it must be. */
function writeCsv(w: OutputWriter, n: number, quoted: boolean, plan: CopyPlan): void {
  const { delimiter, quote, escape } = plan;
  let needsQuotes = quoted || equals(masked, 0, n, plan.nullMarker);
  for (let i = 0; i < n && !needsQuotes; i++) {
    const b = masked[i]!;
    needsQuotes = b === delimiter || b === quote || b === escape || b === NEWLINE || b === 0x0d;
  }
  if (!needsQuotes) {
    writeRaw(w, masked, 0, n);
    return;
  }
  w.ensure(2 * n + 2);
  const buf = w.buf;
  let pos = w.pos;
  buf[pos++] = quote;
  for (let i = 0; i < n; i++) {
    const b = masked[i]!;
    if (b === quote || b === escape) buf[pos++] = escape;
    buf[pos++] = b;
  }
  buf[pos++] = quote;
  w.pos = pos;
}

function writeRaw(w: OutputWriter, bytes: Uint8Array, start: number, end: number): void {
  w.ensure(end - start);
  for (let i = start; i < end; i++) w.buf[w.pos++] = bytes[i]!;
}

function indexOf(src: Uint8Array, byte: number, from: number, end: number): number {
  for (let i = from; i < end; i++) if (src[i] === byte) return i;
  return -1;
}

function equals(src: Uint8Array, s: number, e: number, bytes: Uint8Array): boolean {
  return e - s === bytes.length && sameBytes(src, s, bytes, 0, bytes.length);
}

function sameBytes(a: Uint8Array, as: number, b: Uint8Array, bs: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}
