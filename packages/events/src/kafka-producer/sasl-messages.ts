import { ProtocolWriter } from './protocol-writer.js';
import type { ProtocolReader } from './protocol-reader.js';

/** SaslHandshake response (v1). */
export interface SaslHandshakeResponse {
  readonly errorCode: number;
  /** The mechanisms the broker enables on this listener. */
  readonly mechanisms: readonly string[];
}

/** SaslAuthenticate response (v0–v1). */
export interface SaslAuthenticateResponse {
  readonly errorCode: number;
  readonly errorMessage: string | null;
  readonly authBytes: Buffer;
  /** v1: how long the session may last before the broker wants re-authentication (0: no limit). */
  readonly sessionLifetimeMs: number;
}

/** SaslHandshake request (v1): the mechanism name, e.g. `SCRAM-SHA-256`. */
export function encodeSaslHandshakeRequest(mechanism: string): Buffer {
  return new ProtocolWriter(32).string(mechanism).take();
}

export function decodeSaslHandshakeResponse(reader: ProtocolReader): SaslHandshakeResponse {
  const errorCode = reader.int16('error code');
  const mechanisms = reader.array('mechanisms', 2, (r) => r.string('mechanism'));
  return { errorCode, mechanisms };
}

/** SaslAuthenticate request (v0–v1): the mechanism's next message. */
export function encodeSaslAuthenticateRequest(authBytes: Uint8Array): Buffer {
  return new ProtocolWriter(authBytes.length + 8).bytes(authBytes).take();
}

export function decodeSaslAuthenticateResponse(
  version: number,
  reader: ProtocolReader,
): SaslAuthenticateResponse {
  const errorCode = reader.int16('error code');
  const errorMessage = reader.nullableString('error message');
  const authBytes = reader.nullableBytes('auth bytes') ?? Buffer.alloc(0);
  const sessionLifetimeMs = version >= 1 ? reader.safeInt64('session lifetime') : 0;
  return { errorCode, errorMessage, authBytes, sessionLifetimeMs };
}
