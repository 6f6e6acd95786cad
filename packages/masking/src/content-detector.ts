import type { KeyObject } from 'node:crypto';
import { CHAR_CLASS, Cls } from './char-class.js';
import { createMasker, type Masker } from './create-masker.js';
import { detectApiToken } from './detect-api-token.js';
import { detectAwsKey } from './detect-aws-key.js';
import { detectCard, wholeCard } from './detect-card.js';
import { detectEmail } from './detect-email.js';
import { detectIban } from './detect-iban.js';
import { detectIpv4 } from './detect-ipv4.js';
import { detectIpv6 } from './detect-ipv6.js';
import { detectJwt } from './detect-jwt.js';
import { detectPhone, isWholePhone } from './detect-phone.js';
import { detectPrivateKey } from './detect-private-key.js';
import { detectSsn } from './detect-ssn.js';
import { DETECTOR_KINDS, type DetectorKind } from './detector-kind.js';
import { DEFAULT_REDACT_MARKER, type MaskStyle } from './mask-style.js';
import { SpanList } from './span-list.js';

/** Options of a {@link ContentDetector}. Plain data (apart from a `KeyObject` key). */
export interface ContentDetectorOptions {
  /** Detectors to run; all of {@link DETECTOR_KINDS} when not given. */
  readonly kinds?: readonly DetectorKind[];
  /** Style per detector; see {@link DEFAULT_DETECTOR_STYLES} for those not given. */
  readonly styles?: Partial<Record<DetectorKind, MaskStyle>>;
  /** HMAC key, required when a style is `hash`. */
  readonly hashKey?: Uint8Array | KeyObject;
}

/** A finding: `kind` found at `[start, end)` (byte offsets into the scanned buffer). */
export interface DetectedSpan {
  readonly kind: DetectorKind;
  readonly start: number;
  readonly end: number;
}

/** A value with its findings masked: `value` null means the value became SQL NULL. */
export interface MaskedText {
  readonly value: Uint8Array | null;
  /** Spans masked (overlapping findings count once). */
  readonly spans: number;
}

/** Styles used for detectors the options do not mention: a card keeps its last four digits. */
export const DEFAULT_DETECTOR_STYLES: Readonly<Record<DetectorKind, MaskStyle>> = {
  'private-key': { kind: 'redact' },
  jwt: { kind: 'redact' },
  'aws-key': { kind: 'redact' },
  email: { kind: 'redact' },
  card: { kind: 'partial', keepLast: 4 },
  iban: { kind: 'redact' },
  ssn: { kind: 'redact' },
  phone: { kind: 'redact' },
  ipv4: { kind: 'redact' },
  ipv6: { kind: 'redact' },
  'api-token': { kind: 'redact' },
};

/**
 * Detector indexes, in {@link DETECTOR_KINDS} order. Plain constants rather than a `const enum`:
 * with isolated modules an enum member is a property load each time it is read.
 */
const K_PRIVATE_KEY = 0;
const K_JWT = 1;
const K_AWS_KEY = 2;
const K_EMAIL = 3;
const K_CARD = 4;
const K_IBAN = 5;
const K_SSN = 6;
const K_PHONE = 7;
const K_IPV4 = 8;
const K_IPV6 = 9;
const K_API_TOKEN = 10;

// Module-local copies of the class table and bits: the hot loop reads them without going
// through import bindings.
const CLASSES = new Uint16Array(CHAR_CLASS);
const DIGIT = Cls.Digit;
const UPPER = Cls.Upper;
const LOWER = Cls.Lower;
const AT = Cls.At;
const DOT = Cls.Dot;
const COLON = Cls.Colon;
const DASH = Cls.Dash;
const SPACE = Cls.Space;
const PHONE_SEPARATORS = Cls.Plus | Cls.Dash | Cls.Space | Cls.Dot | Cls.Paren | Cls.Slash;

/**
 * True when a span found so far is the whole value; it then becomes the only span. Merging
 * would give the same (the union is the whole value, of the longest member's kind), so a
 * value claims the same detector whether that detector ran first (a hint) or after others
 * that found a part of it (`+123-45-6789`: an SSN inside a phone number).
 */
function covered(spans: SpanList, start: number, end: number): boolean {
  const d = spans.data;
  for (let i = spans.length - 1; i >= 0; i--) {
    if (d[i * 3 + 1] !== start || d[i * 3 + 2] !== end) continue;
    d[0] = d[i * 3]!;
    d[1] = start;
    d[2] = end;
    spans.length = 1;
    return true;
  }
  return false;
}

/** Nothing shorter than this is looked at (the shortest finding, `::1`, has 3 bytes). */
const MIN_VALUE_BYTES = 3;
const MARKER = new TextEncoder().encode(DEFAULT_REDACT_MARKER);

/**
 * Finds sensitive content (emails, cards, IBANs, SSNs, phones, IP addresses, JWTs, AWS key ids,
 * private keys, API tokens) inside text values and masks just those spans, each with its
 * detector's style.
 *
 * Every value first goes through one byte pass that collects character classes and the digit
 * count; a detector runs only when the value could hold what it looks for (an `@` for email,
 * 13 digits for a card, …), so most values cost that one pass. Detectors work on bytes; text is
 * never decoded except a JWT header candidate.
 *
 * An instance keeps the findings of the last {@link ContentDetector.scan} (the low-level API the
 * rewriters use); it is not re-entrant, which synchronous code never needs.
 */
export class ContentDetector {
  /** The detectors this instance runs. */
  readonly kinds: readonly DetectorKind[];
  readonly #enabled = new Uint8Array(DETECTOR_KINDS.length);
  readonly #maskers: Masker[] = [];
  readonly #spans = new SpanList();
  #covering = -1;
  #maxGrowth = 0;
  #nulls = false;

  constructor(options: ContentDetectorOptions = {}) {
    this.kinds = [...new Set(options.kinds ?? DETECTOR_KINDS)];
    for (const kind of this.kinds) this.#enabled[DETECTOR_KINDS.indexOf(kind)] = 1;
    const keyed = options.hashKey === undefined ? {} : { hashKey: options.hashKey };
    for (const kind of DETECTOR_KINDS) {
      const masker = createMasker(options.styles?.[kind] ?? DEFAULT_DETECTOR_STYLES[kind], keyed);
      this.#maskers.push(masker);
      if (this.#enabled[DETECTOR_KINDS.indexOf(kind)] === 1) {
        if (masker.nulls) this.#nulls = true;
        // A span of n bytes becomes at most max(n, fixed size) bytes.
        this.#maxGrowth = Math.max(this.#maxGrowth, masker.maxOutput(0), MARKER.length);
      }
    }
  }

  /** The findings in `value[start, end)`, overlapping ones merged, in order. */
  find(value: Uint8Array, start = 0, end = value.length): DetectedSpan[] {
    const n = this.scan(value, start, end);
    const d = this.#spans.data;
    const out: DetectedSpan[] = [];
    for (let i = 0; i < n; i++) {
      out.push({ kind: DETECTOR_KINDS[d[i * 3]!]!, start: d[i * 3 + 1]!, end: d[i * 3 + 2]! });
    }
    return out;
  }

  /** `value[start, end)` with its findings masked, or `null` when nothing was found. */
  mask(value: Uint8Array, start = 0, end = value.length): MaskedText | null {
    const spans = this.scan(value, start, end);
    if (spans === 0) return null;
    const out = new Uint8Array(this.maxOutput(end - start));
    const length = this.writeMasked(value, start, end, out, 0, true, false);
    return { value: length < 0 ? null : out.subarray(0, length), spans };
  }

  /**
   * Low level: scans `src[start, end)` and keeps the findings for {@link ContentDetector.writeMasked}.
   * Returns how many spans were found (after merging overlaps).
   *
   * `hint` is what {@link ContentDetector.covering} said after the previous value of the same
   * column. Values of a column tend to be alike, so that detector is tried first, before the
   * byte pass: when it claims the whole value, nothing else runs. The findings are the same
   * with or without a hint (email, card, SSN and phone are the detectors that may claim a whole
   * value, and no value can be wholly two of them); a wrong hint costs one detector run.
   */
  scan(src: Uint8Array, start: number, end: number, hint = -1): number {
    const spans = this.#spans;
    spans.length = 0;
    this.#covering = -1;
    const length = end - start;
    if (length < MIN_VALUE_BYTES) return 0;
    if (hint >= 0) {
      if (this.#claimsWhole(hint, src, start, end)) {
        this.#covering = hint;
        return 1;
      }
      spans.length = 0;
    }
    let flags = 0;
    let digits = 0;
    const classes = CLASSES;
    for (let i = start; i < end; i++) {
      const c = classes[src[i]!]!;
      flags |= c;
      digits += c & DIGIT;
    }
    const on = this.#enabled;
    // Detectors most likely to claim a whole value run first; once a finding covers the whole
    // value, the others could only find spans inside it, which merging would swallow anyway.
    if (on[K_EMAIL] === 1 && (flags & AT) !== 0) {
      detectEmail(src, start, end, spans, K_EMAIL);
      if (covered(spans, start, end)) return this.#claimed(K_EMAIL);
    }
    if (digits >= 8) {
      if (on[K_CARD] === 1 && digits >= 13) {
        detectCard(src, start, end, spans, K_CARD);
        if (covered(spans, start, end)) return this.#claimed(K_CARD);
      }
      if (on[K_SSN] === 1 && digits >= 9 && (flags & (DASH | SPACE)) !== 0) {
        detectSsn(src, start, end, spans, K_SSN);
        if (covered(spans, start, end)) return this.#claimed(K_SSN);
      }
      if (on[K_PHONE] === 1 && (flags & PHONE_SEPARATORS) !== 0) {
        detectPhone(src, start, end, spans, K_PHONE);
        if (covered(spans, start, end)) return this.#claimed(K_PHONE);
      }
      if (on[K_IBAN] === 1 && length >= 15 && (flags & UPPER) !== 0) {
        detectIban(src, start, end, spans, K_IBAN);
      }
    }
    if (digits >= 4 && on[K_IPV4] === 1 && (flags & DOT) !== 0) {
      detectIpv4(src, start, end, spans, K_IPV4);
    }
    if (digits >= 1 && on[K_IPV6] === 1 && (flags & COLON) !== 0) {
      detectIpv6(src, start, end, spans, K_IPV6);
    }
    if (length >= 16 && (flags & UPPER) !== 0) {
      const mixed = (flags & (LOWER | DIGIT)) !== 0;
      if (on[K_AWS_KEY] === 1 && length >= 20) detectAwsKey(src, start, end, spans, K_AWS_KEY);
      if (on[K_JWT] === 1 && mixed && (flags & DOT) !== 0) detectJwt(src, start, end, spans, K_JWT);
      if (on[K_PRIVATE_KEY] === 1 && (flags & DASH) !== 0) {
        detectPrivateKey(src, start, end, spans, K_PRIVATE_KEY);
      }
    }
    // Tokens need letters and either digits or both cases (`sk_live_` keys may lack digits).
    const letters = flags & (UPPER | LOWER);
    if (
      on[K_API_TOKEN] === 1 &&
      length >= 16 &&
      letters !== 0 &&
      ((flags & DIGIT) !== 0 || letters === (UPPER | LOWER))
    ) {
      detectApiToken(src, start, end, spans, K_API_TOKEN);
    }
    spans.normalize();
    return spans.length;
  }

  /**
   * Low level: the detector whose one finding covered the whole value in the last scan (an
   * index into {@link DETECTOR_KINDS}), else -1. Pass it as the next scan's `hint` for a value
   * of the same column.
   */
  get covering(): number {
    return this.#covering;
  }

  #claimed(kind: number): number {
    this.#covering = kind;
    return 1;
  }

  /**
   * Runs the detector `kind` alone; true when its one finding is the whole value. Only the
   * detectors that {@link ContentDetector.scan} lets claim a whole value qualify: for them the
   * guards of the byte pass (an `@`, enough digits, a separator) follow from such a finding.
   */
  #claimsWhole(kind: number, src: Uint8Array, start: number, end: number): boolean {
    const spans = this.#spans;
    if (this.#enabled[kind] !== 1) return false;
    switch (kind) {
      case K_EMAIL:
        detectEmail(src, start, end, spans, K_EMAIL);
        break;
      case K_CARD: {
        const whole = wholeCard(src, start, end);
        if (whole === 1) spans.push(K_CARD, start, end);
        if (whole >= 0) return whole === 1;
        detectCard(src, start, end, spans, K_CARD);
        break;
      }
      case K_SSN:
        detectSsn(src, start, end, spans, K_SSN);
        break;
      case K_PHONE:
        if (isWholePhone(src, start, end)) {
          spans.push(K_PHONE, start, end);
          return true;
        }
        detectPhone(src, start, end, spans, K_PHONE);
        break;
      default:
        return false;
    }
    return covered(spans, start, end);
  }

  /**
   * Low level: the masker of the detector that claimed the whole value in the last scan (see
   * {@link ContentDetector.covering}), or null. Writing the value with it is what
   * {@link ContentDetector.writeMasked} does then, minus the walk over the spans.
   */
  get coveringMasker(): Masker | null {
    return this.#covering < 0 ? null : this.#maskers[this.#covering]!;
  }

  /** Low level: bytes {@link ContentDetector.writeMasked} needs at most after the last scan. */
  maxOutput(length: number): number {
    return length + this.#spans.length * this.#maxGrowth;
  }

  /**
   * Low level: writes `src[start, end)` with the last scan's findings masked into `out` at `pos`
   * and returns the end position, or -1 when a finding's style is `null` and `nullable` (the
   * whole value becomes NULL; otherwise such a finding gets the redact marker). With `jsonSafe`,
   * a masked span holding a quote or backslash is replaced by the marker so JSON text stays
   * valid.
   */
  writeMasked(
    src: Uint8Array,
    start: number,
    end: number,
    out: Uint8Array,
    pos: number,
    nullable: boolean,
    jsonSafe: boolean,
  ): number {
    const d = this.#spans.data;
    const n = this.#spans.length;
    if (nullable && this.#nulls) {
      for (let i = 0; i < n; i++) if (this.#maskers[d[i * 3]!]!.nulls) return -1;
    }
    let from = start;
    for (let i = 0; i < n; i++) {
      const s = d[i * 3 + 1]!;
      const e = d[i * 3 + 2]!;
      while (from < s) out[pos++] = src[from++]!;
      const masker = this.#maskers[d[i * 3]!]!;
      const at = pos;
      if (!masker.nulls) pos = masker.write(src, s, e, out, pos);
      if (masker.nulls || (jsonSafe && hasQuoteOrBackslash(out, at, pos))) {
        out.set(MARKER, at);
        pos = at + MARKER.length;
      }
      from = e;
    }
    while (from < end) out[pos++] = src[from++]!;
    return pos;
  }
}

function hasQuoteOrBackslash(buf: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === 0x22 || buf[i] === 0x5c) return true;
  return false;
}
