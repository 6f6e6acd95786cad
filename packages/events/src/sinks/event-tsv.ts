import { isUtf8 } from 'node:buffer';
import type { SessionEvent } from '@portcullis/core';
import { eventToRow, formatTimeUs, type EventRow } from '../store/event-row.js';

/** How a column's value is written as TabSeparated text. */
export const enum TsvKind {
  Text,
  Number,
  NullableText,
  NullableNumber,
  TextArray,
  /** `time`: a Unix timestamp when a {@link TsvKind.TimeMicros} column follows, else `seconds.micros`. */
  Time,
  /** The microseconds within `time`'s second. */
  TimeMicros,
}

/** One column of a TabSeparated event line. */
export interface TsvColumn {
  readonly name: string;
  /** Where the value comes from in {@link EventRow}. */
  readonly field: keyof EventRow;
  readonly kind: TsvKind;
}

// TabSeparated escaping. A field: backslash, tab, newline, CR and NUL escaped. An array element
// is single-quoted with ClickHouse's quoted-string escapes (the same set plus the quote).
const TSV_SPECIAL = /[\\\t\n\r\0]/;
const TSV_SPECIAL_ALL = /[\\\t\n\r\0]/g;
const QUOTED_SPECIAL_ALL = /[\\'\t\n\r\0]/g;
const ESCAPES: Readonly<Record<string, string>> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\\0',
  "'": "\\'",
};
const escapeChar = (c: string): string => ESCAPES[c] ?? c;

function tsvText(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return TSV_SPECIAL.test(text) ? text.replace(TSV_SPECIAL_ALL, escapeChar) : text;
}

function tsvArray(value: unknown): string {
  if (!Array.isArray(value)) return tsvText(value);
  let out = '[';
  for (let i = 0; i < value.length; i++) {
    if (i > 0) out += ',';
    out += `'${String(value[i]).replace(QUOTED_SPECIAL_ALL, escapeChar)}'`;
  }
  return `${out}]`;
}

/** The event's time in µs, split for the `legacy18` columns (floor division, so pre-1970 works too). */
export function splitTime(timeUs: number): { seconds: number; micros: number } {
  const seconds = Math.floor(timeUs / 1_000_000);
  return { seconds, micros: timeUs - seconds * 1_000_000 };
}

/**
 * Encodes a decoded event as a TabSeparated line of `columns`, newline included, through the
 * store's row mapping. Throws on an event without the expected shape. {@link EventTsvTranscoder}
 * writes the same bytes straight from the event's JSON; this is what it is held to.
 */
export function encodeEventTsv(event: SessionEvent, columns: readonly TsvColumn[]): string {
  const row = eventToRow({ event, prevHash: '', hash: '' });
  const { seconds, micros } = splitTime(event.timeUs);
  const cells = new Array<string>(columns.length);
  for (let i = 0; i < columns.length; i++) {
    const column = columns[i]!;
    const value = row[column.field];
    let cell: string;
    switch (column.kind) {
      case TsvKind.Text:
        cell = tsvText(value);
        break;
      case TsvKind.Number:
        cell = typeof value === 'number' ? String(value) : tsvText(value);
        break;
      case TsvKind.NullableText:
        cell = value === null || value === undefined ? '\\N' : tsvText(value);
        break;
      case TsvKind.NullableNumber:
        cell = value === null || value === undefined ? '\\N' : tsvText(value);
        break;
      case TsvKind.TextArray:
        cell = tsvArray(value);
        break;
      case TsvKind.Time:
        // legacy18: DateTime from a Unix timestamp; modern: DateTime64(6) from `seconds.micros`.
        cell = columns[i + 1]?.kind === TsvKind.TimeMicros ? String(seconds) : tsvText(value);
        break;
      case TsvKind.TimeMicros:
        cell = String(micros);
        break;
    }
    cells[i] = cell;
  }
  // join() makes one flat string; appending 50-odd cells would leave a rope per row to collect.
  return `${cells.join('\t')}\n`;
}

// ---------------------------------------------------------------------------------------------
// The transcoder. The event's fields are described once as a tree; each field gets a slot, and
// scanning the JSON fills the slots with (tag, start, end, flags) of the field's last value, the
// way JSON.parse keeps the last of duplicate keys. The line is then written column by column
// from the slots. Any value the row mapping would treat other than as its declared type makes
// the transcoder give up, and the caller takes the JSON.parse path.

/** What a slot holds. */
const enum Tag {
  Absent,
  Null,
  String,
  Number,
  True,
  False,
  Object,
  /** A well-formed array of the field's element type (strings, or `{subject, email}` objects). */
  Array,
  /** Anything else: an object or array where another type belongs, a badly typed element. */
  Other,
}

// String flags: a backslash (escapes to decode), an apostrophe (to escape inside an array).
const ESCAPED = 1;
const APOSTROPHE = 2;
// Number flag: a safe integer written as String(value) writes it (not -0, no exponent).
const PLAIN = 1;

/** What the row mapping writes for an absent or null value (its `?? x`), or `Required`: no `??`. */
const enum Or {
  Required,
  Null,
  Empty,
  Zero,
  EmptyArray,
}

type FieldShape = 'value' | 'strings' | 'people' | ObjectShape;
interface ObjectShape {
  readonly [key: string]: FieldShape;
}

/** The parts of a SessionEvent the row mapping reads; `people` is `{ subject, email }[]`. */
const EVENT_SHAPE: ObjectShape = {
  schema: 'value',
  id: 'value',
  type: 'value',
  timeUs: 'value',
  sessionId: 'value',
  seq: 'value',
  person: { subject: 'value', email: 'value', name: 'value', groups: 'strings' },
  agent: { id: 'value', name: 'value' },
  authMethod: 'value',
  resource: 'value',
  protocol: 'value',
  upstreamUser: 'value',
  client: { address: 'value', port: 'value', application: 'value', user: 'value', tls: 'value' },
  statement: {
    text: 'value',
    protocol: 'value',
    preparedName: 'value',
    params: 'value',
    tag: 'value',
    rows: 'value',
    bytes: 'value',
    durationUs: 'value',
    error: { code: 'value', message: 'value' },
    kind: 'value',
    fingerprint: 'value',
    tables: 'strings',
    verdict: 'value',
    rule: 'value',
    masked: { values: 'value', columns: 'strings' },
  },
  approval: { text: 'value', kind: 'value', rule: 'value', message: 'value', id: 'value' },
  approvalDecision: { id: 'value', by: 'people', reason: 'value', waitedUs: 'value' },
  summary: {
    reason: 'value',
    statements: 'value',
    rows: 'value',
    bytesFromClient: 'value',
    bytesToClient: 'value',
    durationUs: 'value',
    error: { code: 'value', message: 'value' },
  },
  authFailure: { reason: 'value', code: 'value' },
  accessGrant: { id: 'value', endsUs: 'value', by: 'people' },
};
const PERSON_REF_SHAPE: ObjectShape = { subject: 'value', email: 'value' };

const enum SlotKind {
  Value,
  Object,
  Strings,
  People,
}

/** The slot tree built from the shapes, shared by every transcoder. */
const layout = (() => {
  const keys: string[] = [];
  const keyIds = new Map<string, number>();
  const slotKinds: SlotKind[] = [];
  /** For an object slot: its context; the slots of its subtree are (slot, subtreeEnd). */
  const childContext: number[] = [];
  const subtreeEnd: number[] = [];
  const contexts: Map<number, number>[] = [];
  const slots = new Map<string, number>();
  function context(shape: ObjectShape, prefix: string): number {
    const id = contexts.length;
    const members = new Map<number, number>();
    contexts.push(members);
    for (const [key, child] of Object.entries(shape)) {
      let keyId = keyIds.get(key);
      if (keyId === undefined) {
        keyId = keys.length;
        keys.push(key);
        keyIds.set(key, keyId);
      }
      const slot = slotKinds.length;
      const path = prefix + key;
      slots.set(path, slot);
      members.set(keyId, slot);
      slotKinds.push(
        typeof child === 'object'
          ? SlotKind.Object
          : child === 'strings'
            ? SlotKind.Strings
            : child === 'people'
              ? SlotKind.People
              : SlotKind.Value,
      );
      childContext.push(-1);
      subtreeEnd.push(slot + 1);
      if (typeof child === 'object') {
        childContext[slot] = context(child, `${path}.`);
        subtreeEnd[slot] = slotKinds.length;
      }
    }
    return id;
  }
  const top = context(EVENT_SHAPE, '');
  // The element of a `people` array, parsed into two scratch slots.
  const personRef = context(PERSON_REF_SHAPE, '[].');
  const memberSlot = new Int16Array(contexts.length * keys.length).fill(-1);
  contexts.forEach((members, ctx) => {
    for (const [keyId, slot] of members) memberSlot[ctx * keys.length + keyId] = slot;
  });
  // Open-addressed table of the key names, hashed as the scanner hashes them.
  const table = new Int16Array(256).fill(-1);
  const encoded = keys.map((key) => Buffer.from(key, 'latin1'));
  encoded.forEach((bytes, keyId) => {
    let h = 0;
    for (const b of bytes) h = keyHashStep(h, b);
    let i = keyHashStep(h, bytes.length) & 255;
    while (table[i] !== -1) i = (i + 1) & 255;
    table[i] = keyId;
  });
  // Each key with its closing quote as little-endian 32-bit words, for comparing four bytes at a
  // time; the last word's unused bytes are masked off.
  const quoted = encoded.map((bytes) => Buffer.concat([bytes, Buffer.from('"')]));
  const keyWordAt = new Int32Array(keys.length + 1);
  quoted.forEach(
    (bytes, keyId) => (keyWordAt[keyId + 1] = keyWordAt[keyId]! + Math.ceil(bytes.length / 4)),
  );
  const keyWords = new Int32Array(keyWordAt[keys.length]!);
  const keyLastMask = new Int32Array(keys.length);
  quoted.forEach((bytes, keyId) => {
    const padded = Buffer.alloc(Math.ceil(bytes.length / 4) * 4);
    bytes.copy(padded);
    for (let w = 0; w < padded.length / 4; w++) {
      keyWords[keyWordAt[keyId]! + w] = padded.readInt32LE(w * 4);
    }
    const tail = bytes.length % 4;
    keyLastMask[keyId] = tail === 0 ? -1 : (1 << (tail * 8)) - 1;
  });
  const slot = (path: string): number => {
    const found = slots.get(path);
    if (found === undefined) throw new Error(`no slot ${path}`);
    return found;
  };
  return {
    contextCount: contexts.length,
    keyCount: keys.length,
    keyBytes: encoded,
    keyLength: Int32Array.from(encoded, (bytes) => bytes.length),
    keyWordAt,
    keyWords,
    keyLastMask,
    keyTable: table,
    memberSlot,
    slotCount: slotKinds.length,
    slotKinds: Uint8Array.from(slotKinds),
    childContext: Int16Array.from(childContext),
    subtreeEnd: Int16Array.from(subtreeEnd),
    top,
    personRef,
    slot,
  };
})();

function keyHashStep(h: number, b: number): number {
  return Math.imul(h ^ b, 0x01000193);
}

const S = layout.slot;
const SLOT_ID = S('id');
const SLOT_TIME = S('timeUs');
const SLOT_PERSON = S('person');
const SLOT_CLIENT = S('client');
const SLOT_TLS = S('client.tls');
const SLOT_DECISION = S('approvalDecision');
const SLOT_DECISION_ID = S('approvalDecision.id');
const SLOT_DECISION_BY = S('approvalDecision.by');
const SLOT_GRANT = S('accessGrant');
const SLOT_GRANT_BY = S('accessGrant.by');
const SLOT_REF_SUBJECT = S('[].subject');
const SLOT_REF_EMAIL = S('[].email');
/** Object slots that may be absent or null, and must be objects otherwise. */
const OPTIONAL_OBJECTS = [
  'agent',
  'statement',
  'statement.error',
  'statement.masked',
  'approval',
  'approvalDecision',
  'summary',
  'summary.error',
  'authFailure',
  'accessGrant',
].map(S);

/** Where a column's value comes from. */
const enum Source {
  /** A slot, with what the row mapping does when it is absent or null. */
  Slot,
  Time,
  Tls,
  /** `approval.id ?? approvalDecision.id ?? ''`. */
  ApprovalId,
  /** `x?.by.map((p) => p.subject) ?? []` of a `people` slot (`Email` likewise). */
  Subjects,
  Emails,
  /** The hash chain columns, which this writer leaves empty. */
  Empty,
}

type Mapping =
  { readonly at: string; readonly or: Or } | { readonly source: Source; readonly at?: string };

/** {@link eventToRow}, field by field; keyed by the row's fields so a new column is a type error here. */
const MAPPING: Readonly<Record<keyof EventRow, Mapping>> = {
  id: { at: 'id', or: Or.Required },
  schema: { at: 'schema', or: Or.Required },
  type: { at: 'type', or: Or.Required },
  time: { source: Source.Time },
  session_id: { at: 'sessionId', or: Or.Required },
  seq: { at: 'seq', or: Or.Required },
  person_subject: { at: 'person.subject', or: Or.Required },
  person_email: { at: 'person.email', or: Or.Required },
  person_name: { at: 'person.name', or: Or.Null },
  person_groups: { at: 'person.groups', or: Or.Required },
  agent_id: { at: 'agent.id', or: Or.Empty },
  agent_name: { at: 'agent.name', or: Or.Empty },
  auth_method: { at: 'authMethod', or: Or.Required },
  resource: { at: 'resource', or: Or.Required },
  protocol: { at: 'protocol', or: Or.Required },
  upstream_user: { at: 'upstreamUser', or: Or.Required },
  client_address: { at: 'client.address', or: Or.Required },
  client_port: { at: 'client.port', or: Or.Required },
  client_application: { at: 'client.application', or: Or.Required },
  client_user: { at: 'client.user', or: Or.Required },
  client_tls: { source: Source.Tls },
  statement_text: { at: 'statement.text', or: Or.Null },
  statement_protocol: { at: 'statement.protocol', or: Or.Empty },
  statement_prepared_name: { at: 'statement.preparedName', or: Or.Null },
  statement_params: { at: 'statement.params', or: Or.Zero },
  statement_tag: { at: 'statement.tag', or: Or.Empty },
  kind: { at: 'statement.kind', or: Or.Empty },
  fingerprint: { at: 'statement.fingerprint', or: Or.Empty },
  tables: { at: 'statement.tables', or: Or.EmptyArray },
  verdict: { at: 'statement.verdict', or: Or.Empty },
  rule: { at: 'statement.rule', or: Or.Empty },
  rows: { at: 'statement.rows', or: Or.Zero },
  bytes: { at: 'statement.bytes', or: Or.Zero },
  duration_us: { at: 'statement.durationUs', or: Or.Zero },
  error_code: { at: 'statement.error.code', or: Or.Empty },
  error_message: { at: 'statement.error.message', or: Or.Null },
  masked_values: { at: 'statement.masked.values', or: Or.Null },
  masked_columns: { at: 'statement.masked.columns', or: Or.EmptyArray },
  approval_text: { at: 'approval.text', or: Or.Null },
  approval_kind: { at: 'approval.kind', or: Or.Empty },
  approval_rule: { at: 'approval.rule', or: Or.Empty },
  approval_message: { at: 'approval.message', or: Or.Empty },
  end_reason: { at: 'summary.reason', or: Or.Null },
  end_statements: { at: 'summary.statements', or: Or.Zero },
  end_rows: { at: 'summary.rows', or: Or.Zero },
  end_bytes_from_client: { at: 'summary.bytesFromClient', or: Or.Zero },
  end_bytes_to_client: { at: 'summary.bytesToClient', or: Or.Zero },
  end_duration_us: { at: 'summary.durationUs', or: Or.Zero },
  end_error_code: { at: 'summary.error.code', or: Or.Empty },
  end_error_message: { at: 'summary.error.message', or: Or.Null },
  approval_id: { source: Source.ApprovalId, at: 'approval.id' },
  decision_by_subjects: { source: Source.Subjects, at: 'approvalDecision.by' },
  decision_by_emails: { source: Source.Emails, at: 'approvalDecision.by' },
  decision_reason: { at: 'approvalDecision.reason', or: Or.Null },
  decision_waited_us: { at: 'approvalDecision.waitedUs', or: Or.Zero },
  auth_failure_reason: { at: 'authFailure.reason', or: Or.Null },
  auth_failure_code: { at: 'authFailure.code', or: Or.Empty },
  access_grant_id: { at: 'accessGrant.id', or: Or.Empty },
  access_grant_ends_us: { at: 'accessGrant.endsUs', or: Or.Zero },
  access_grant_by_subjects: { source: Source.Subjects, at: 'accessGrant.by' },
  access_grant_by_emails: { source: Source.Emails, at: 'accessGrant.by' },
  prev_hash: { source: Source.Empty },
  hash: { source: Source.Empty },
};

const enum Ch {
  Tab = 0x09,
  Newline = 0x0a,
  Return = 0x0d,
  Space = 0x20,
  Quote = 0x22,
  Apostrophe = 0x27,
  Plus = 0x2b,
  Comma = 0x2c,
  Minus = 0x2d,
  Dot = 0x2e,
  Slash = 0x2f,
  Zero = 0x30,
  One = 0x31,
  Nine = 0x39,
  Colon = 0x3a,
  N = 0x4e,
  LeftBracket = 0x5b,
  Backslash = 0x5c,
  RightBracket = 0x5d,
  LowerE = 0x65,
  UpperE = 0x45,
  LowerB = 0x62,
  LowerF = 0x66,
  LowerN = 0x6e,
  LowerR = 0x72,
  LowerT = 0x74,
  LowerU = 0x75,
  LeftBrace = 0x7b,
  RightBrace = 0x7d,
}

/** Bytes a JSON string's scan must look at: its end, escapes, control characters, `'`. */
const STRING_BYTE = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) STRING_BYTE[b] = 1;
STRING_BYTE[Ch.Quote] = 1;
STRING_BYTE[Ch.Backslash] = 1;
STRING_BYTE[Ch.Apostrophe] = 1;

/**
 * Whether any of the four bytes of `word` is one a string's scan must look at ({@link
 * STRING_BYTE}): a byte equal to `"`, `\\` or `'`, or below 0x20, found with the classic
 * "has a zero byte" test, `(x - 0x01…) & ~x & 0x80…`, on the word XORed with each. The test can
 * also flag a byte above a real match (a borrow), never miss one, so a flagged word is only
 * looked at byte by byte.
 */
function needsLook(word: number): boolean {
  const quote = word ^ 0x22222222;
  const backslash = word ^ 0x5c5c5c5c;
  const apostrophe = word ^ 0x27272727;
  const flagged =
    ((quote - 0x01010101) & ~quote) |
    ((backslash - 0x01010101) & ~backslash) |
    ((apostrophe - 0x01010101) & ~apostrophe) |
    ((word - 0x20202020) & ~word);
  return (flagged & 0x80808080) !== 0;
}

/** Deeper nesting than this (only possible in fields the mapping ignores) is left to JSON.parse. */
const MAX_DEPTH = 32;
/** Room for a column besides its string text: a tab and a number (String(double) ≤ 24) or a time. */
const COLUMN_ROOM = 64;

/** A hex digit's value, or -1. */
function hexDigit(b: number): number {
  if (b >= 0x30 && b <= 0x39) return b - 0x30;
  const lower = b | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function hex4(json: Uint8Array, at: number): number {
  return (
    (hexDigit(json[at]!) << 12) |
    (hexDigit(json[at + 1]!) << 8) |
    (hexDigit(json[at + 2]!) << 4) |
    hexDigit(json[at + 3]!)
  );
}

/** Writes ASCII text (a number's or a time's digits). */
function writeAscii(text: string, out: Uint8Array, pos: number): number {
  for (let i = 0; i < text.length; i++) out[pos++] = text.charCodeAt(i);
  return pos;
}

const POWERS_OF_TEN = Array.from({ length: 16 }, (_, i) => 10 ** i);

/** Writes `String(n)`. */
function writeNumber(n: number, out: Uint8Array, pos: number): number {
  if (n === 0) {
    out[pos] = Ch.Zero; // -0 prints as 0 too
    return pos + 1;
  }
  if (!Number.isSafeInteger(n)) return writeAscii(String(n), out, pos);
  if (n < 0) {
    out[pos++] = Ch.Minus;
    n = -n;
  }
  let digits = 1;
  while (digits < 16 && n >= POWERS_OF_TEN[digits]!) digits++;
  let at = pos + digits;
  let x = n;
  // Above 2^31 in floating point; below, in integers the compiler divides by multiplying.
  for (; x > 0x7fffffff; x = Math.floor(x / 10)) out[--at] = Ch.Zero + (x % 10);
  for (let y = x | 0; at > pos; y = (y / 10) | 0) out[--at] = Ch.Zero + (y % 10);
  return pos + digits;
}

/** Writes one UTF-16 code unit other than a surrogate as UTF-8, TSV-escaped. */
function writeUnit(unit: number, quoted: boolean, out: Uint8Array, pos: number): number {
  if (unit < 0x80) {
    let escape = -1;
    if (unit === 0) escape = Ch.Zero;
    else if (unit === Ch.Tab) escape = Ch.LowerT;
    else if (unit === Ch.Newline) escape = Ch.LowerN;
    else if (unit === Ch.Return) escape = Ch.LowerR;
    else if (unit === Ch.Backslash) escape = Ch.Backslash;
    else if (unit === Ch.Apostrophe && quoted) escape = Ch.Apostrophe;
    if (escape >= 0) {
      out[pos++] = Ch.Backslash;
      out[pos++] = escape;
    } else {
      out[pos++] = unit;
    }
    return pos;
  }
  if (unit < 0x800) {
    out[pos++] = 0xc0 | (unit >> 6);
    out[pos++] = 0x80 | (unit & 0x3f);
    return pos;
  }
  out[pos++] = 0xe0 | (unit >> 12);
  out[pos++] = 0x80 | ((unit >> 6) & 0x3f);
  out[pos++] = 0x80 | (unit & 0x3f);
  return pos;
}

/**
 * Writes the string whose JSON text (quotes excluded) is `json[start, end)` as TSV: escapes
 * decoded, then TSV-escaped (array-element quoting when `quoted`), as UTF-8 with a lone
 * surrogate as U+FFFD, which is how Buffer encodes a JS string holding one.
 */
function writeEscaped(
  json: Uint8Array,
  start: number,
  end: number,
  quoted: boolean,
  out: Uint8Array,
  pos: number,
): number {
  let i = start;
  while (i < end) {
    const b = json[i]!;
    if (b !== Ch.Backslash) {
      if (b === Ch.Apostrophe && quoted) out[pos++] = Ch.Backslash;
      out[pos++] = b;
      i++;
      continue;
    }
    const c = json[i + 1]!;
    i += 2;
    switch (c) {
      case Ch.LowerN:
      case Ch.LowerT:
      case Ch.LowerR:
      case Ch.Backslash:
        // The escape means the same in TSV.
        out[pos++] = Ch.Backslash;
        out[pos++] = c;
        break;
      case Ch.LowerB:
        out[pos++] = 0x08;
        break;
      case Ch.LowerF:
        out[pos++] = 0x0c;
        break;
      case Ch.LowerU: {
        const unit = hex4(json, i);
        i += 4;
        if (unit >= 0xd800 && unit <= 0xdfff) {
          if (
            unit <= 0xdbff &&
            i + 6 <= end &&
            json[i] === Ch.Backslash &&
            json[i + 1] === Ch.LowerU
          ) {
            const low = hex4(json, i + 2);
            if (low >= 0xdc00 && low <= 0xdfff) {
              i += 6;
              const cp = 0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00);
              out[pos++] = 0xf0 | (cp >> 18);
              out[pos++] = 0x80 | ((cp >> 12) & 0x3f);
              out[pos++] = 0x80 | ((cp >> 6) & 0x3f);
              out[pos++] = 0x80 | (cp & 0x3f);
              break;
            }
          }
          out[pos++] = 0xef;
          out[pos++] = 0xbf;
          out[pos++] = 0xbd;
          break;
        }
        pos = writeUnit(unit, quoted, out, pos);
        break;
      }
      default:
        // `"` and `/`: themselves.
        out[pos++] = c;
    }
  }
  return pos;
}

/** What the writer does for a column, decided once from where its value comes from and its kind. */
const enum Op {
  /** A slot's string or number as text; absent or null: the column's {@link Absent}. */
  Value,
  /** A slot's array of strings; absent or null: likewise. */
  Strings,
  /** The subjects or emails of a `people` slot; `[]` when its object is absent or null. */
  Subjects,
  Emails,
  Tls,
  /** `approval.id ?? approvalDecision.id ?? ''`: the slot is `approval.id`. */
  ApprovalId,
  /** `time` as a Unix timestamp (legacy18, a `time_micros` column follows), its micros, or `seconds.micros`. */
  TimeSeconds,
  TimeMicros,
  TimeText,
  /** Only the column's {@link Absent} (the hash chain columns). */
  Constant,
  /** A column this writer does not reproduce (a kind the mapping's value is not written in here). */
  Decline,
}

/** A column's text for an absent or null value, as {@link encodeEventTsv} writes the mapping's default. */
const enum Absent {
  /** The default would print as `undefined` or `null`: left to the reference path. */
  Decline,
  Nothing,
  NullMark,
  Zero,
  EmptyArray,
}

/** The {@link Op} and {@link Absent} of a column. */
function plan(
  mapping: Mapping,
  column: TsvColumn,
  next: TsvColumn | undefined,
): { op: Op; absent: Absent } {
  const kind = column.kind;
  const array = kind === TsvKind.TextArray;
  const nullable = kind === TsvKind.NullableText || kind === TsvKind.NullableNumber;
  if (kind === TsvKind.Time || kind === TsvKind.TimeMicros) {
    if (column.field !== 'time')
      throw new RangeError(`${column.name}: only time is written as a time`);
    const op =
      kind === TsvKind.TimeMicros
        ? Op.TimeMicros
        : next?.kind === TsvKind.TimeMicros
          ? Op.TimeSeconds
          : Op.TimeText;
    return { op, absent: Absent.Decline };
  }
  if ('or' in mapping) {
    if (array) {
      return {
        op: Op.Strings,
        absent: mapping.or === Or.EmptyArray ? Absent.EmptyArray : Absent.Decline,
      };
    }
    const absent =
      mapping.or === Or.Null
        ? nullable
          ? Absent.NullMark
          : Absent.Decline
        : mapping.or === Or.Empty
          ? Absent.Nothing
          : mapping.or === Or.Zero
            ? Absent.Zero
            : Absent.Decline;
    return { op: Op.Value, absent };
  }
  switch (mapping.source) {
    case Source.Tls:
      return { op: Op.Tls, absent: Absent.Decline };
    case Source.ApprovalId:
      return { op: array ? Op.Decline : Op.ApprovalId, absent: Absent.Nothing };
    case Source.Subjects:
    case Source.Emails:
      return {
        op: !array ? Op.Decline : mapping.source === Source.Subjects ? Op.Subjects : Op.Emails,
        absent: Absent.EmptyArray,
      };
    case Source.Empty:
      return { op: array ? Op.Decline : Op.Constant, absent: Absent.Nothing };
    default:
      // Source.Time with a kind other than a time's.
      return { op: Op.Decline, absent: Absent.Decline };
  }
}

/** Writes an {@link Absent}; -1 for `Decline`. */
function writeAbsent(absent: Absent, out: Uint8Array, pos: number): number {
  switch (absent) {
    case Absent.Decline:
      return -1;
    case Absent.Nothing:
      return pos;
    case Absent.NullMark:
      out[pos] = Ch.Backslash;
      out[pos + 1] = Ch.N;
      return pos + 2;
    case Absent.Zero:
      out[pos] = Ch.Zero;
      return pos + 1;
    case Absent.EmptyArray:
      out[pos] = Ch.LeftBracket;
      out[pos + 1] = Ch.RightBracket;
      return pos + 2;
  }
}

/** `formatTimeUs(time)`: digits written directly in the usual case. */
function writeTimeText(time: number, out: Uint8Array, pos: number): number {
  const seconds = Math.floor(time / 1_000_000);
  const micros = time - seconds * 1_000_000;
  if (
    !Number.isSafeInteger(seconds) ||
    !Number.isInteger(micros) ||
    micros < 0 ||
    micros > 999_999
  ) {
    return writeAscii(formatTimeUs(time), out, pos);
  }
  pos = writeNumber(seconds, out, pos);
  out[pos++] = Ch.Dot;
  for (let i = 5, rest = micros; i >= 0; i--, rest = (rest / 10) | 0) {
    out[pos + i] = Ch.Zero + (rest % 10);
  }
  return pos + 6;
}

/**
 * Writes the TabSeparated line of an event straight from its JSON (one object, as the gateway
 * spools it), without decoding it into objects: byte for byte what {@link encodeEventTsv} writes
 * for `JSON.parse` of the same bytes, or nothing at all. Keys may come in any order, unknown ones
 * are skipped, and of duplicate keys the last counts, as with JSON.parse. Whatever it does not
 * handle exactly like that path (malformed JSON, a value of another type than the mapping
 * expects, an escaped key, deep nesting) it declines, and the caller takes that path, which also
 * decides whether the record is an event at all. Reusable; one line at a time.
 */
export class EventTsvTranscoder {
  // Per column: where its value comes from, the slot, and the default.
  readonly #op: Uint8Array;
  readonly #opSlot: Int16Array;
  readonly #opDefault: Uint8Array;
  // Per slot: what the JSON held there.
  readonly #tag = new Uint8Array(layout.slotCount);
  readonly #start = new Int32Array(layout.slotCount);
  readonly #end = new Int32Array(layout.slotCount);
  readonly #flags = new Uint8Array(layout.slotCount);
  /** Array elements, four numbers each: tag, start, end, flags (`people`: subject, then email). */
  #elements = new Int32Array(256 * 4);
  #elementCount = 0;
  /** Per context and previous key: the key id that came next last time (see #key). */
  readonly #predictions = new Int16Array(layout.contextCount * (layout.keyCount + 2)).fill(-1);
  #json: Uint8Array = new Uint8Array(0);
  /** `#json`'s ArrayBuffer read four bytes at a time; `#json[i]` is at `#base + i` there. */
  #view: DataView = new DataView(new ArrayBuffer(0));
  #base = 0;
  /** The last output buffer and its view (a sink writes many lines into one). */
  #out: Uint8Array | null = null;
  #outView: DataView = new DataView(new ArrayBuffer(0));
  #length = 0;
  #sawHighBytes = 0;
  // The value the last scan read.
  #vTag: Tag = Tag.Absent;
  #vStart = 0;
  #vEnd = 0;
  #vFlags = 0;
  #timeUs = 0;

  constructor(columns: readonly TsvColumn[]) {
    const n = columns.length;
    this.#op = new Uint8Array(n);
    this.#opSlot = new Int16Array(n);
    this.#opDefault = new Uint8Array(n);
    columns.forEach((column, i) => {
      const mapping = MAPPING[column.field];
      if (mapping.at !== undefined) this.#opSlot[i] = S(mapping.at);
      const { op, absent } = plan(mapping, column, columns[i + 1]);
      this.#op[i] = op;
      this.#opDefault[i] = absent;
    });
  }

  /**
   * Room a line can need for an event of `jsonBytes` bytes of JSON: a string's text at most
   * doubles (`'` in an array, `\u0000` as `\0`), and each column adds at most a tab and a
   * number's or a default's text.
   */
  maxLineBytes(jsonBytes: number): number {
    return 2 * jsonBytes + COLUMN_ROOM * this.#op.length;
  }

  /**
   * Writes the line (newline included) for the event JSON `json[start, end)` into `out` at
   * `offset` and returns where it ends, or -1 when it declines (nothing meaningful is written
   * then). `out` needs {@link EventTsvTranscoder.maxLineBytes} of room, or it declines.
   */
  transcode(
    json: Uint8Array,
    out: Uint8Array,
    offset: number,
    start = 0,
    end = json.length,
  ): number {
    // Every write below stays within the room this asks for (the words of `#copy` need that).
    if (offset < 0 || out.length - offset < this.maxLineBytes(end - start)) return -1;
    this.#json = json;
    // Records of one spool read share an ArrayBuffer, and so one view.
    if (json.buffer !== this.#view.buffer) this.#view = new DataView(json.buffer);
    this.#base = json.byteOffset;
    this.#length = end;
    this.#tag.fill(Tag.Absent);
    this.#elementCount = 0;
    this.#sawHighBytes = 0;
    let p = this.#space(start);
    if (json[p] !== Ch.LeftBrace) return -1;
    p = this.#object(p, layout.top, 0);
    if (p < 0 || this.#space(p) !== this.#length) return -1;
    // JSON.parse of a Buffer's text sees invalid UTF-8 as U+FFFD; only valid text is copied as is.
    if (this.#sawHighBytes & 0x80808080 && !isUtf8(json.subarray(start, end))) return -1;
    if (!this.#shapeOk()) return -1;
    if (out !== this.#out) {
      this.#out = out;
      this.#outView = new DataView(out.buffer, out.byteOffset, out.byteLength);
    }
    return this.#write(out, offset);
  }

  /** The event id of the line last written (`String(event.id)`). */
  get id(): string {
    const json = this.#json;
    const start = this.#start[SLOT_ID]!;
    const end = this.#end[SLOT_ID]!;
    if (this.#flags[SLOT_ID]! & ESCAPED) {
      return JSON.parse(
        Buffer.from(json.buffer, json.byteOffset + start - 1, end - start + 2).toString(),
      ) as string;
    }
    return Buffer.from(json.buffer, json.byteOffset + start, end - start).toString('utf8');
  }

  /** The event time (µs) of the line last written. */
  get timeUs(): number {
    return this.#timeUs;
  }

  /** Skips JSON whitespace. */
  #space(p: number): number {
    const json = this.#json;
    const length = this.#length;
    while (p < length) {
      const b = json[p]!;
      if (b !== Ch.Space && b !== Ch.Newline && b !== Ch.Tab && b !== Ch.Return) break;
      p++;
    }
    return p;
  }

  /** An object at `p` (its `{`) whose members fill the slots of context `ctx`; -1 when malformed. */
  #object(p: number, ctx: number, depth: number): number {
    const json = this.#json;
    const keyCount = layout.keyCount;
    p = this.#space(p + 1);
    if (json[p] === Ch.RightBrace) return p + 1;
    const predictions = this.#predictions;
    const tags = this.#tag;
    let previous = -1;
    for (;;) {
      if (json[p] !== Ch.Quote) return -1;
      const predictAt = ctx * (keyCount + 2) + previous + 1;
      const predicted = predictions[predictAt]!;
      const keyId = this.#key(p + 1, predicted);
      if (keyId === -2) return -1;
      if (keyId !== predicted) predictions[predictAt] = keyId;
      previous = keyId < 0 ? keyCount : keyId;
      p = this.#vEnd + 1;
      if (json[p] !== Ch.Colon) {
        p = this.#space(p);
        if (json[p] !== Ch.Colon) return -1;
      }
      p++;
      if (json[p]! <= Ch.Space) p = this.#space(p);
      const slot = keyId < 0 ? -1 : layout.memberSlot[ctx * keyCount + keyId]!;
      if (slot < 0) {
        p = this.#value(p, depth);
      } else {
        switch (layout.slotKinds[slot] as SlotKind) {
          case SlotKind.Value:
            p = this.#value(p, depth);
            this.#store(slot);
            break;
          case SlotKind.Object:
            // A later duplicate replaces all of an earlier one.
            for (let i = slot, end = layout.subtreeEnd[slot]!; i < end; i++) tags[i] = Tag.Absent;
            if (json[p] === Ch.LeftBrace) {
              if (depth >= MAX_DEPTH) return -1;
              p = this.#object(p, layout.childContext[slot]!, depth + 1);
              this.#tag[slot] = Tag.Object;
            } else {
              p = this.#value(p, depth);
              this.#tag[slot] = this.#vTag === Tag.Null ? Tag.Null : Tag.Other;
            }
            break;
          case SlotKind.Strings:
          case SlotKind.People:
            p =
              json[p] === Ch.LeftBracket
                ? this.#array(p, slot, depth)
                : this.#storeOther(this.#value(p, depth), slot);
            break;
        }
      }
      if (p < 0) return -1;
      if (json[p]! <= Ch.Space) p = this.#space(p);
      const b = json[p];
      if (b === Ch.Comma) {
        p++;
        if (json[p]! <= Ch.Space) p = this.#space(p);
        continue;
      }
      return b === Ch.RightBrace ? p + 1 : -1;
    }
  }

  #store(slot: number): void {
    this.#tag[slot] = this.#vTag;
    this.#start[slot] = this.#vStart;
    this.#end[slot] = this.#vEnd;
    this.#flags[slot] = this.#vFlags;
  }

  #storeOther(p: number, slot: number): number {
    this.#tag[slot] = this.#vTag === Tag.Null ? Tag.Null : Tag.Other;
    return p;
  }

  /**
   * The key whose text starts at `p` (after its quote); the id of a known key, -1 for another,
   * -2 for one with escapes (left to JSON.parse) or a malformed one. `#vEnd` is its closing quote.
   * `predicted` (the key that followed the previous one last time) is tried first: events share
   * their key order, so this nearly always spares hashing.
   */
  #key(p: number, predicted: number): number {
    const json = this.#json;
    const length = this.#length;
    if (predicted >= 0) {
      // The key and its closing quote, four bytes at a time (near the end, the hash below).
      const words = layout.keyWords;
      const last = layout.keyWordAt[predicted + 1]! - 1;
      let w = layout.keyWordAt[predicted]!;
      if (p + (last - w + 1) * 4 <= length) {
        const view = this.#view;
        let at = this.#base + p;
        while (w < last && view.getInt32(at, true) === words[w]) {
          w++;
          at += 4;
        }
        if (w === last && (view.getInt32(at, true) & layout.keyLastMask[predicted]!) === words[w]) {
          this.#vEnd = p + layout.keyLength[predicted]!;
          return predicted;
        }
      }
    }
    const start = p;
    let h = 0;
    let high = 0;
    for (;;) {
      if (p >= length) return -2;
      const b = json[p]!;
      if (b === Ch.Quote) break;
      if (b === Ch.Backslash || b < 0x20) return -2;
      high |= b;
      h = keyHashStep(h, b);
      p++;
    }
    this.#vEnd = p;
    this.#sawHighBytes |= high;
    const size = p - start;
    const table = layout.keyTable;
    for (let i = keyHashStep(h, size) & 255; ; i = (i + 1) & 255) {
      const keyId = table[i]!;
      if (keyId < 0) return -1;
      const bytes = layout.keyBytes[keyId]!;
      if (bytes.length !== size) continue;
      let same = true;
      for (let j = 0; j < size; j++) {
        if (bytes[j] !== json[start + j]) {
          same = false;
          break;
        }
      }
      if (same) return keyId;
    }
  }

  /**
   * Any JSON value at `p`; returns the position after it or -1. Strings, numbers and literals
   * land in `#vTag/#vStart/#vEnd/#vFlags`; objects and arrays are checked and skipped as `Other`.
   */
  #value(p: number, depth: number): number {
    const json = this.#json;
    const b = json[p];
    if (b === Ch.Quote) return this.#string(p + 1);
    if ((b! >= Ch.Zero && b! <= Ch.Nine) || b === Ch.Minus) return this.#number(p);
    switch (b) {
      case Ch.LowerT:
        this.#vTag = Tag.True;
        return this.#literal(p, 0x74727565, 4); // true
      case Ch.LowerF:
        this.#vTag = Tag.False;
        return json[p + 4] === 0x65 ? this.#literal(p, 0x66616c73, 5) : -1; // false
      case Ch.LowerN:
        this.#vTag = Tag.Null;
        return this.#literal(p, 0x6e756c6c, 4); // null
      case Ch.LeftBrace:
      case Ch.LeftBracket: {
        const end = this.#skipContainer(p, depth + 1);
        this.#vTag = Tag.Other;
        return end;
      }
      default:
        return -1;
    }
  }

  #literal(p: number, first4: number, size: number): number {
    const json = this.#json;
    if (p + size > this.#length) return -1;
    const word =
      ((json[p]! << 24) | (json[p + 1]! << 16) | (json[p + 2]! << 8) | json[p + 3]!) >>> 0;
    return word === first4 ? p + size : -1;
  }

  /** A string whose text starts at `p`; records its span and flags. */
  #string(p: number): number {
    const json = this.#json;
    const view = this.#view;
    const base = this.#base;
    const length = this.#length;
    const start = p;
    let flags = 0;
    let high = 0;
    for (;;) {
      // Four bytes at a time while none needs a look; then byte by byte up to the one that does.
      while (p + 4 <= length) {
        const word = view.getInt32(base + p, true);
        if (needsLook(word)) break;
        high |= word;
        p += 4;
      }
      if (p >= length) return -1;
      const b = json[p++]!;
      high |= b;
      // One look-up for most bytes, which need nothing.
      if (STRING_BYTE[b] === 0) continue;
      if (b === Ch.Quote) break;
      if (b === Ch.Backslash) {
        flags |= ESCAPED;
        const c = json[p];
        if (c === Ch.LowerU) {
          if (p + 5 > length || hex4(json, p + 1) < 0) return -1;
          p += 5;
        } else if (
          c === Ch.Quote ||
          c === Ch.Backslash ||
          c === Ch.Slash ||
          c === Ch.LowerN ||
          c === Ch.LowerT ||
          c === Ch.LowerR ||
          c === Ch.LowerB ||
          c === Ch.LowerF
        ) {
          p++;
        } else {
          return -1;
        }
      } else if (b < 0x20) {
        return -1;
      } else {
        flags |= APOSTROPHE;
      }
    }
    this.#sawHighBytes |= high;
    this.#vTag = Tag.String;
    this.#vStart = start;
    this.#vEnd = p - 1;
    this.#vFlags = flags;
    return p;
  }

  /** A number at `p`, checked against JSON's grammar. */
  #number(p: number): number {
    const json = this.#json;
    const start = p;
    let plain = true;
    if (json[p] === Ch.Minus) p++;
    const digitsFrom = p;
    let b = json[p];
    if (b === Ch.Zero) {
      b = json[++p];
    } else if (b !== undefined && b >= Ch.One && b <= Ch.Nine) {
      do b = json[++p];
      while (b !== undefined && b >= Ch.Zero && b <= Ch.Nine);
    } else {
      return -1;
    }
    // Up to 15 digits, or 16 below 9e15: below 2^53, where digits and String(value) agree.
    const digits = p - digitsFrom;
    if (digits > 16 || (digits === 16 && json[digitsFrom]! >= 0x39)) plain = false;
    if (b === Ch.Dot) {
      plain = false;
      b = json[++p];
      if (b === undefined || b < Ch.Zero || b > Ch.Nine) return -1;
      do b = json[++p];
      while (b !== undefined && b >= Ch.Zero && b <= Ch.Nine);
    }
    if (b === Ch.LowerE || b === Ch.UpperE) {
      plain = false;
      b = json[++p];
      if (b === Ch.Plus || b === Ch.Minus) b = json[++p];
      if (b === undefined || b < Ch.Zero || b > Ch.Nine) return -1;
      do b = json[++p];
      while (b !== undefined && b >= Ch.Zero && b <= Ch.Nine);
    }
    // "-0" is -0, which prints as "0".
    if (plain && digitsFrom > start && p - digitsFrom === 1 && json[digitsFrom] === Ch.Zero) {
      plain = false;
    }
    this.#vTag = Tag.Number;
    this.#vStart = start;
    this.#vEnd = p;
    this.#vFlags = plain ? PLAIN : 0;
    return p;
  }

  /** Checks and skips an object or array the mapping does not read. */
  #skipContainer(p: number, depth: number): number {
    if (depth > MAX_DEPTH) return -1;
    const json = this.#json;
    const close = json[p] === Ch.LeftBrace ? Ch.RightBrace : Ch.RightBracket;
    p = this.#space(p + 1);
    if (json[p] === close) return p + 1;
    for (;;) {
      if (close === Ch.RightBrace) {
        if (json[p] !== Ch.Quote) return -1;
        p = this.#string(p + 1);
        if (p < 0) return -1;
        p = this.#space(p);
        if (json[p] !== Ch.Colon) return -1;
        p = this.#space(p + 1);
      }
      p = this.#value(p, depth);
      if (p < 0) return -1;
      p = this.#space(p);
      const b = json[p];
      if (b === Ch.Comma) {
        p = this.#space(p + 1);
        continue;
      }
      return b === close ? p + 1 : -1;
    }
  }

  #pushElement(tag: Tag, start: number, end: number, flags: number): void {
    let elements = this.#elements;
    const at = this.#elementCount * 4;
    if (at + 4 > elements.length) {
      const grown = new Int32Array(elements.length * 2);
      grown.set(elements);
      this.#elements = elements = grown;
    }
    elements[at] = tag;
    elements[at + 1] = start;
    elements[at + 2] = end;
    elements[at + 3] = flags;
    this.#elementCount++;
  }

  /** An array for a `strings` or `people` slot: its elements go to `#elements`. */
  #array(p: number, slot: number, depth: number): number {
    const json = this.#json;
    const people = layout.slotKinds[slot] === SlotKind.People;
    const first = this.#elementCount;
    let count = 0;
    let ok = true;
    p = this.#space(p + 1);
    if (json[p] !== Ch.RightBracket) {
      for (;;) {
        if (people && json[p] === Ch.LeftBrace) {
          if (depth + 1 >= MAX_DEPTH) return -1;
          this.#tag[SLOT_REF_SUBJECT] = Tag.Absent;
          this.#tag[SLOT_REF_EMAIL] = Tag.Absent;
          p = this.#object(p, layout.personRef, depth + 1);
          for (const ref of [SLOT_REF_SUBJECT, SLOT_REF_EMAIL]) {
            this.#pushElement(
              this.#tag[ref]!,
              this.#start[ref]!,
              this.#end[ref]!,
              this.#flags[ref]!,
            );
          }
        } else {
          p = this.#value(p, depth);
          if (people || this.#vTag !== Tag.String) ok = false;
          else this.#pushElement(Tag.String, this.#vStart, this.#vEnd, this.#vFlags);
        }
        if (p < 0) return -1;
        count++;
        p = this.#space(p);
        const b = json[p];
        if (b === Ch.Comma) {
          p = this.#space(p + 1);
          continue;
        }
        if (b !== Ch.RightBracket) return -1;
        break;
      }
    }
    this.#tag[slot] = ok ? Tag.Array : Tag.Other;
    this.#start[slot] = first;
    this.#end[slot] = count;
    return p + 1;
  }

  /** The objects the mapping reads through are objects (or absent/null where it allows). */
  #shapeOk(): boolean {
    const tag = this.#tag;
    if (tag[SLOT_PERSON] !== Tag.Object || tag[SLOT_CLIENT] !== Tag.Object) return false;
    // The caller needs the id as text (`String(event.id)`); other ids are rare enough to leave.
    if (tag[SLOT_ID] !== Tag.String) return false;
    for (const slot of OPTIONAL_OBJECTS)
      if (tag[slot]! > Tag.Null && tag[slot] !== Tag.Object) return false;
    // `x.by.map(…)` throws unless `by` is an array (of objects, each checked when written).
    if (tag[SLOT_DECISION] === Tag.Object && tag[SLOT_DECISION_BY] !== Tag.Array) return false;
    if (tag[SLOT_GRANT] === Tag.Object && tag[SLOT_GRANT_BY] !== Tag.Array) return false;
    return tag[SLOT_TIME] === Tag.Number;
  }

  /** Writes the line; -1 when a value is not one this writer handles. */
  #write(out: Uint8Array, pos: number): number {
    const json = this.#json;
    const tags = this.#tag;
    const starts = this.#start;
    const ends = this.#end;
    const flags = this.#flags;
    const ops = this.#op;
    const slots = this.#opSlot;
    const defaults = this.#opDefault;
    const count = ops.length;
    const time = this.#numberAt(SLOT_TIME);
    this.#timeUs = time;
    for (let i = 0; i < count; i++) {
      let slot = slots[i]!;
      const op = ops[i] as Op;
      // `approval?.id ?? approvalDecision?.id ?? ''`
      if (op === Op.ApprovalId && tags[slot]! <= Tag.Null) slot = SLOT_DECISION_ID;
      switch (op) {
        case Op.ApprovalId:
        case Op.Value: {
          const tag = tags[slot] as Tag;
          if (tag === Tag.String) {
            pos =
              flags[slot]! & ESCAPED
                ? writeEscaped(json, starts[slot]!, ends[slot]!, false, out, pos)
                : this.#copy(starts[slot]!, ends[slot]!, out, pos);
          } else if (tag === Tag.Number) {
            pos =
              flags[slot]! & PLAIN
                ? this.#copy(starts[slot]!, ends[slot]!, out, pos)
                : writeNumber(this.#numberAt(slot), out, pos);
          } else if (tag <= Tag.Null) {
            pos = writeAbsent(defaults[i] as Absent, out, pos);
          } else {
            return -1;
          }
          break;
        }
        case Op.Strings: {
          const tag = tags[slot] as Tag;
          if (tag === Tag.Array) pos = this.#writeArray(slot, 0, 1, out, pos);
          else if (tag <= Tag.Null) pos = writeAbsent(defaults[i] as Absent, out, pos);
          else return -1;
          break;
        }
        case Op.Subjects:
        case Op.Emails:
          // `x?.by.map(…) ?? []`; a present x without `by` failed #shapeOk.
          pos =
            tags[slot] === Tag.Array
              ? this.#writeArray(slot, op === Op.Subjects ? 0 : 1, 2, out, pos)
              : writeAbsent(Absent.EmptyArray, out, pos);
          break;
        case Op.Tls: {
          // `tls ? 1 : 0`
          const tag = tags[SLOT_TLS] as Tag;
          if (tag === Tag.True) out[pos++] = Ch.One;
          else if (tag <= Tag.Null || tag === Tag.False) out[pos++] = Ch.Zero;
          else return -1;
          break;
        }
        case Op.TimeSeconds:
          pos = writeNumber(Math.floor(time / 1_000_000), out, pos);
          break;
        case Op.TimeMicros:
          pos = writeNumber(time - Math.floor(time / 1_000_000) * 1_000_000, out, pos);
          break;
        case Op.TimeText:
          pos = writeTimeText(time, out, pos);
          break;
        case Op.Constant:
          pos = writeAbsent(defaults[i] as Absent, out, pos);
          break;
        case Op.Decline:
          return -1;
      }
      if (pos < 0) return -1;
      out[pos++] = Ch.Tab;
    }
    // The last column's tab becomes the line's end.
    out[pos - 1] = Ch.Newline;
    return pos;
  }

  /**
   * Copies `#json[start, end)` to `out` at `pos`: a long run with set(), a short one four bytes
   * at a time. `transcode` only writes where {@link EventTsvTranscoder.maxLineBytes} leaves room,
   * so the words never fall off the end.
   */
  #copy(start: number, end: number, out: Uint8Array, pos: number): number {
    const json = this.#json;
    const size = end - start;
    if (size > 48) {
      out.set(json.subarray(start, end), pos);
      return pos + size;
    }
    const from = this.#view;
    const to = this.#outView;
    let i = start;
    for (let at = this.#base + i; i + 4 <= end; i += 4, at += 4, pos += 4) {
      to.setInt32(pos, from.getInt32(at, true), true);
    }
    for (; i < end; i++) out[pos++] = json[i]!;
    return pos;
  }

  #numberAt(slot: number): number {
    const json = this.#json;
    const start = this.#start[slot]!;
    const end = this.#end[slot]!;
    if (this.#flags[slot]! & PLAIN) {
      let at = start;
      const negative = json[at] === Ch.Minus;
      if (negative) at++;
      let n = 0;
      for (; at < end; at++) n = n * 10 + (json[at]! - Ch.Zero);
      return negative ? -n : n;
    }
    let text = '';
    for (let at = start; at < end; at++) text += String.fromCharCode(json[at]!);
    return Number(text);
  }

  /** `['a','b']` from the elements of an array slot, every `stride`-th from `offset`. */
  #writeArray(slot: number, offset: number, stride: number, out: Uint8Array, pos: number): number {
    const elements = this.#elements;
    const first = this.#start[slot]!;
    const count = this.#end[slot]!;
    out[pos++] = Ch.LeftBracket;
    for (let k = 0; k < count; k++) {
      const at = (first + k * stride + offset) * 4;
      if (elements[at] !== Tag.String) return -1;
      if (k > 0) out[pos++] = Ch.Comma;
      out[pos++] = Ch.Apostrophe;
      const start = elements[at + 1]!;
      const end = elements[at + 2]!;
      pos =
        elements[at + 3]! & (ESCAPED | APOSTROPHE)
          ? writeEscaped(this.#json, start, end, true, out, pos)
          : this.#copy(start, end, out, pos);
      out[pos++] = Ch.Apostrophe;
    }
    out[pos++] = Ch.RightBracket;
    return pos;
  }
}
