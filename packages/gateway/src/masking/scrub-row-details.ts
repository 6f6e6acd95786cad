/**
 * PostgreSQL error details that quote stored values: `Failing row contains (…)` (NOT NULL and
 * CHECK violations) and `Key (col)=(…)` (unique and foreign-key violations). A masked column's
 * value can surface there — `INSERT INTO customers SELECT … FROM customers` fails on a
 * duplicate key and names the existing email — and the detectors only recognise values of
 * known shapes, so on resources that mask the quoted values are removed whole.
 */
const ROW_DETAIL = /^(Failing row contains )\(.*\)(\.?)$/s;
const KEY_DETAIL = /^(Key \([^)]*\)=)\(.*?\)( .*)$/s;

const REMOVED = '(values hidden by Portcullis masking)';

/** The detail text with quoted values removed, or null when it quotes none. */
export function scrubDetailText(detail: string): string | null {
  const row = ROW_DETAIL.exec(detail);
  if (row !== null) return `${row[1]}${REMOVED}${row[2]}`;
  const key = KEY_DETAIL.exec(detail);
  if (key !== null) return `${key[1]}${REMOVED}${key[2]}`;
  return null;
}

const DETAIL = 0x44; // 'D'

/**
 * An ErrorResponse or NoticeResponse (`type`, body `buf[start, end)`) with its detail field
 * scrubbed by {@link scrubDetailText}, as a complete new frame; null when nothing changed or
 * the body is malformed (the caller's own decoding reports that).
 */
export function scrubRowDetails(
  type: number,
  buf: Buffer,
  start: number,
  end: number,
): Buffer | null {
  let p = start;
  while (p < end && buf[p] !== 0) {
    const z = buf.indexOf(0, p + 1);
    if (z === -1 || z >= end) return null;
    if (buf[p] === DETAIL) {
      const scrubbed = scrubDetailText(buf.toString('utf8', p + 1, z));
      if (scrubbed === null) return null;
      const value = Buffer.from(scrubbed, 'utf8');
      const length = 4 + (p - start) + 1 + value.length + (end - z);
      const out = Buffer.allocUnsafe(1 + length);
      out[0] = type;
      out.writeInt32BE(length, 1);
      let o = 5 + buf.copy(out, 5, start, p + 1);
      o += value.copy(out, o);
      buf.copy(out, o, z, end);
      return out;
    }
    p = z + 1;
  }
  return null;
}
