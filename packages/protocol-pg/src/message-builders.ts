import { StartupCode } from './message-codes.js';

/**
 * Builders for the messages the gateway originates. Relayed traffic is never rebuilt: these
 * are only for the gateway's own replies and its side of the upstream handshake.
 */

/** Builds a typed frame from a body, filling in the length. */
function frame(type: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstring(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function int32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeInt32BE(value | 0, 0);
  return out;
}

/** The fields of an ErrorResponse or NoticeResponse the gateway sends. */
export interface ErrorMessageFields {
  /** `ERROR`, `FATAL`, `NOTICE`, `WARNING`… */
  readonly severity: string;
  /** SQLSTATE, e.g. `28P01`. */
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

function fieldList(fields: ErrorMessageFields): Buffer {
  const parts = [
    Buffer.from('S'),
    cstring(fields.severity),
    Buffer.from('V'),
    cstring(fields.severity),
    Buffer.from('C'),
    cstring(fields.code),
    Buffer.from('M'),
    cstring(fields.message),
  ];
  if (fields.detail !== undefined) parts.push(Buffer.from('D'), cstring(fields.detail));
  if (fields.hint !== undefined) parts.push(Buffer.from('H'), cstring(fields.hint));
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** ErrorResponse (`E`). */
export function errorResponse(fields: ErrorMessageFields): Buffer {
  return frame(0x45, fieldList(fields));
}

/** NoticeResponse (`N`). */
export function noticeResponse(fields: ErrorMessageFields): Buffer {
  return frame(0x4e, fieldList(fields));
}

/** AuthenticationOk. */
export const authenticationOk: Buffer = frame(0x52, int32(0));

/** AuthenticationCleartextPassword: asks the client for its password (the gateway token). */
export const authenticationCleartextPassword: Buffer = frame(0x52, int32(3));

/** ParameterStatus (`S`). */
export function parameterStatus(name: string, value: string): Buffer {
  return frame(0x53, Buffer.concat([cstring(name), cstring(value)]));
}

/** BackendKeyData (`K`). */
export function backendKeyData(processId: number, secretKey: number): Buffer {
  return frame(0x4b, Buffer.concat([int32(processId), int32(secretKey)]));
}

/** ReadyForQuery (`Z`). */
export function readyForQuery(status: 'I' | 'T' | 'E'): Buffer {
  return frame(0x5a, Buffer.from(status, 'latin1'));
}

/** NegotiateProtocolVersion (`v`): the newest minor version spoken and the options not recognised. */
export function negotiateProtocolVersion(minor: number, unrecognized: readonly string[]): Buffer {
  return frame(
    0x76,
    Buffer.concat([
      int32(StartupCode.Protocol3 | minor),
      int32(unrecognized.length),
      ...unrecognized.map(cstring),
    ]),
  );
}

/** The one-byte answers to SSLRequest and GSSENCRequest. */
export const sslAccepted: Buffer = Buffer.from('S');
/** Refuses SSLRequest or GSSENCRequest. */
export const encryptionRefused: Buffer = Buffer.from('N');

/** StartupMessage (untyped) for protocol 3.0. */
export function startupMessage(
  params: ReadonlyMap<string, string> | Record<string, string>,
): Buffer {
  const entries = params instanceof Map ? [...params] : Object.entries(params);
  const body = Buffer.concat([
    int32(StartupCode.Protocol3),
    ...entries.flatMap(([name, value]) => [cstring(name), cstring(value)]),
    Buffer.from([0]),
  ]);
  return Buffer.concat([int32(body.length + 4), body]);
}

/** SSLRequest (untyped). */
export const sslRequest: Buffer = Buffer.concat([int32(8), int32(StartupCode.SSLRequest)]);

/** CancelRequest (untyped). */
export function cancelRequest(processId: number, secretKey: number): Buffer {
  return Buffer.concat([
    int32(16),
    int32(StartupCode.CancelRequest),
    int32(processId),
    int32(secretKey),
  ]);
}

/** PasswordMessage (`p`) carrying a cleartext or md5-hashed password. */
export function passwordMessage(password: string): Buffer {
  return frame(0x70, cstring(password));
}

/** SASLInitialResponse (`p`). */
export function saslInitialResponse(mechanism: string, data: string): Buffer {
  const payload = Buffer.from(data, 'utf8');
  return frame(0x70, Buffer.concat([cstring(mechanism), int32(payload.length), payload]));
}

/** SASLResponse (`p`). */
export function saslResponse(data: string): Buffer {
  return frame(0x70, Buffer.from(data, 'utf8'));
}

/** Query (`Q`). */
export function query(sql: string): Buffer {
  return frame(0x51, cstring(sql));
}

/** Terminate (`X`). */
export const terminate: Buffer = frame(0x58, Buffer.alloc(0));

/** Parse (`P`) with no parameter types. */
export function parse(name: string, sql: string): Buffer {
  return frame(0x50, Buffer.concat([cstring(name), cstring(sql), Buffer.from([0, 0])]));
}

/** Bind (`B`) with no parameters and default result formats. */
export function bind(portal: string, statement: string): Buffer {
  return frame(0x42, Buffer.concat([cstring(portal), cstring(statement), Buffer.alloc(6)]));
}
