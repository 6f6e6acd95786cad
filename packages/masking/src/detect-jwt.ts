import { CHAR_CLASS, Cls, indexOfByte } from './char-class.js';
import type { SpanList } from './span-list.js';

function isBase64Url(b: number | undefined): boolean {
  return (
    b !== undefined &&
    ((CHAR_CLASS[b]! & (Cls.Digit | Cls.Upper | Cls.Lower)) !== 0 || b === 0x2d || b === 0x5f)
  );
}

function partEnd(src: Uint8Array, at: number, end: number): number {
  while (at < end && isBase64Url(src[at])) at++;
  return at;
}

/**
 * JSON Web Tokens (JWS compact form): three base64url parts split by dots, the first starting
 * `eyJ` (base64 of `{"`) and decoding to a JSON object with a string `alg`. The signature may be
 * empty (`alg: none`), the token is still a bearer credential.
 */
export function detectJwt(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = indexOfByte(src, 0x65, start, end);
  while (i >= 0) {
    let next = i + 1;
    if (
      i + 2 < end &&
      src[i + 1] === 0x79 &&
      src[i + 2] === 0x4a &&
      (i === start || (!isBase64Url(src[i - 1]) && src[i - 1] !== 0x2e))
    ) {
      const headerEnd = partEnd(src, i, end);
      if (headerEnd - i >= 10 && headerEnd < end && src[headerEnd] === 0x2e) {
        const payloadEnd = partEnd(src, headerEnd + 1, end);
        if (payloadEnd - headerEnd - 1 >= 2 && payloadEnd < end && src[payloadEnd] === 0x2e) {
          const signatureEnd = partEnd(src, payloadEnd + 1, end);
          if (hasAlg(src, i, headerEnd)) {
            spans.push(kind, i, signatureEnd);
            next = signatureEnd;
          }
        }
      }
    }
    i = indexOfByte(src, 0x65, next, end);
  }
}

function hasAlg(src: Uint8Array, start: number, end: number): boolean {
  if (end - start > 4096) return false;
  const text = Buffer.from(src.buffer, src.byteOffset + start, end - start).toString('latin1');
  try {
    const header: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    return (
      typeof header === 'object' &&
      header !== null &&
      typeof (header as { alg?: unknown }).alg === 'string'
    );
  } catch {
    return false;
  }
}
