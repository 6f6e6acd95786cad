import { PortcullisError } from '@portcullis/core';
import { StartupCode } from './message-codes.js';

/** Largest startup-phase packet accepted (PostgreSQL's own limit is 10 000 bytes). */
export const MAX_STARTUP_PACKET_BYTES = 10_000;

/** A decoded untyped startup-phase packet. */
export type StartupPacket =
  | { readonly kind: 'ssl-request' }
  | { readonly kind: 'gssenc-request' }
  | { readonly kind: 'cancel'; readonly processId: number; readonly secretKey: number }
  | {
      readonly kind: 'startup';
      readonly major: number;
      readonly minor: number;
      /** Parameters in the order sent: user, database, application_name, options, … */
      readonly params: ReadonlyMap<string, string>;
    };

/**
 * Decodes the untyped packet a client sends first (`length:i32 code:i32 …`). Returns the
 * packet and the bytes it used, or `null` while `buf` holds less than a whole packet.
 * Throws PCL_ERR_PROTOCOL_MALFORMED for a bad length or layout and
 * PCL_ERR_PROTOCOL_UNSUPPORTED for protocol versions other than 3.
 */
export function decodeStartupPacket(buf: Buffer): { packet: StartupPacket; used: number } | null {
  if (buf.length < 4) return null;
  const length = buf.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET_BYTES) {
    throw new PortcullisError(
      'PCL_ERR_PROTOCOL_MALFORMED',
      `invalid startup packet length ${length}`,
    );
  }
  if (buf.length < length) return null;
  const code = buf.readInt32BE(4);
  if (code === StartupCode.SSLRequest) return { packet: { kind: 'ssl-request' }, used: length };
  if (code === StartupCode.GSSENCRequest)
    return { packet: { kind: 'gssenc-request' }, used: length };
  if (code === StartupCode.CancelRequest) {
    if (length !== 16) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'invalid cancel request length');
    }
    return {
      packet: { kind: 'cancel', processId: buf.readInt32BE(8), secretKey: buf.readInt32BE(12) },
      used: length,
    };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new PortcullisError(
      'PCL_ERR_PROTOCOL_UNSUPPORTED',
      `unsupported frontend protocol ${major}.${minor}: server supports 3.0`,
    );
  }
  return {
    packet: { kind: 'startup', major, minor, params: decodeParams(buf, 8, length) },
    used: length,
  };
}

function decodeParams(buf: Buffer, start: number, end: number): Map<string, string> {
  const params = new Map<string, string>();
  let pos = start;
  for (;;) {
    const nameEnd = buf.indexOf(0, pos);
    if (nameEnd === -1 || nameEnd >= end) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'startup packet is not terminated');
    }
    if (nameEnd === pos) {
      // The final empty name ends the list, and must be the packet's last byte (as PostgreSQL
      // requires): bytes after it would be read differently by different parsers.
      if (nameEnd !== end - 1) {
        throw new PortcullisError(
          'PCL_ERR_PROTOCOL_MALFORMED',
          'startup packet has bytes after its terminator',
        );
      }
      break;
    }
    const valueEnd = buf.indexOf(0, nameEnd + 1);
    if (valueEnd === -1 || valueEnd >= end) {
      throw new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'startup parameter has no value');
    }
    params.set(buf.toString('utf8', pos, nameEnd), buf.toString('utf8', nameEnd + 1, valueEnd));
    pos = valueEnd + 1;
  }
  return params;
}
