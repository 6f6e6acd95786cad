import { PortcullisError } from '@portcullis/core';
import type { ContentDetector } from './content-detector.js';
import { OutputWriter } from './output-writer.js';

/**
 * ErrorResponse / NoticeResponse fields the detectors are applied to: where PostgreSQL puts
 * values. `M` message (`invalid input syntax for type integer: "…"`, `RAISE EXCEPTION 'bad
 * email %', …`), `D` detail (`Key (email)=(…) already exists`, `Failing row contains (…)`),
 * `H` hint, `W` where/context (PL/pgSQL lines and statements), `q` internal query. The other
 * fields hold codes, identifiers and source locations, and are left alone.
 */
export const MASKED_NOTICE_FIELDS = 'MDHWq';

const MASKED = new Uint8Array(256);
for (const c of MASKED_NOTICE_FIELDS) MASKED[c.charCodeAt(0)] = 1;

/** An ErrorResponse or NoticeResponse that masking changed (counts only). */
export interface NoticeRewrite {
  /** The complete new frame, with the type byte it came with. */
  readonly frame: Buffer;
  /** Fields changed. */
  readonly maskedValues: number;
  /** Codes of the changed fields (`D`, `M`, …), in frame order. */
  readonly maskedFields: readonly string[];
}

/**
 * Runs the detectors over the value-bearing fields ({@link MASKED_NOTICE_FIELDS}) of an
 * ErrorResponse (`E`) or NoticeResponse (`N`) body `body[start, end)`. A finding whose style is
 * `null` gets the redact marker (a field cannot be NULL). Returns `null` when nothing changed.
 * A body without its terminators throws `PCL_ERR_PROTOCOL_MALFORMED`.
 */
export function maskNoticeFields(
  type: number,
  body: Uint8Array,
  start: number,
  end: number,
  detector: ContentDetector,
): NoticeRewrite | null {
  const w = new OutputWriter(body, start, end - start + 64, false);
  const fields: string[] = [];
  let p = start;
  for (;;) {
    if (p >= end) malformed();
    const code = body[p]!;
    if (code === 0) break;
    let z = p + 1;
    while (z < end && body[z] !== 0) z++;
    if (z >= end) malformed();
    if (MASKED[code] === 1 && detector.scan(body, p + 1, z) > 0) {
      if (fields.length === 0) {
        w.byte(type);
        w.int32(0);
        w.pending = start;
      }
      w.copyTo(p + 1);
      w.ensure(detector.maxOutput(z - p - 1));
      w.pos = detector.writeMasked(body, p + 1, z, w.buf, w.pos, false, false);
      w.pending = z;
      fields.push(String.fromCharCode(code));
    }
    p = z + 1;
  }
  if (fields.length === 0) return null;
  w.copyTo(end);
  const frame = w.result();
  frame.writeInt32BE(frame.length - 1, 1);
  return { frame, maskedValues: fields.length, maskedFields: fields };
}

function malformed(): never {
  throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'malformed error or notice fields');
}
