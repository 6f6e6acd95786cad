import { indexOfByte, startsWithAscii } from './char-class.js';
import type { SpanList } from './span-list.js';

const BEGIN = '-----BEGIN ';
const DASHES = '-----';

/**
 * PEM private keys: `-----BEGIN <label>-----` where the label holds `PRIVATE KEY` (PKCS#8,
 * `RSA`, `EC`, `DSA`, `OPENSSH`, `ENCRYPTED`, PGP's `PRIVATE KEY BLOCK`), through the matching
 * `-----END <label>-----`, or to the end of the value when that is missing (a cut-off key is
 * still secret). Certificates and public keys are left alone.
 */
export function detectPrivateKey(
  src: Uint8Array,
  start: number,
  end: number,
  spans: SpanList,
  kind: number,
): void {
  let i = indexOfByte(src, 0x2d, start, end);
  while (i >= 0) {
    let next = i + 1;
    if (startsWithAscii(src, i, end, BEGIN)) {
      const labelStart = i + BEGIN.length;
      let labelEnd = labelStart;
      while (labelEnd < end && labelEnd - labelStart < 40 && isLabelByte(src[labelEnd]!)) {
        labelEnd++;
      }
      if (
        startsWithAscii(src, labelEnd, end, DASHES) &&
        containsAscii(src, labelStart, labelEnd, 'PRIVATE KEY')
      ) {
        const stop = endMarker(src, labelEnd + DASHES.length, end, labelStart, labelEnd);
        spans.push(kind, i, stop);
        next = stop;
      }
    }
    i = next < end ? indexOfByte(src, 0x2d, next, end) : -1;
  }
}

function isLabelByte(b: number): boolean {
  return (b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39) || b === 0x20;
}

function containsAscii(src: Uint8Array, start: number, end: number, text: string): boolean {
  for (let i = start; i + text.length <= end; i++) {
    if (startsWithAscii(src, i, end, text)) return true;
  }
  return false;
}

/** End of `-----END <label>-----` after `from`, or `end` when there is none. */
function endMarker(
  src: Uint8Array,
  from: number,
  end: number,
  labelStart: number,
  labelEnd: number,
): number {
  const labelLength = labelEnd - labelStart;
  let i = indexOfByte(src, 0x2d, from, end);
  while (i >= 0) {
    if (startsWithAscii(src, i, end, '-----END ')) {
      const at = i + 9;
      let same = at + labelLength <= end;
      for (let k = 0; same && k < labelLength; k++) same = src[at + k] === src[labelStart + k];
      if (same && startsWithAscii(src, at + labelLength, end, DASHES)) {
        return at + labelLength + DASHES.length;
      }
    }
    i = indexOfByte(src, 0x2d, i + 1, end);
  }
  return end;
}
