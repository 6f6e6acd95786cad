import { PortcullisError } from '@portcullis/core';

/**
 * Decoders for the frame bodies the gateway needs to read. Each takes the body as
 * `(buf, start, end)` — the view a FrameScanner hands out — and decodes only what it returns.
 * A body that ends early throws PCL_ERR_PROTOCOL_MALFORMED.
 */

function malformed(what: string): PortcullisError {
  return new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', `malformed ${what} message`);
}

/** Index of the NUL ending the C string at `pos`; throws when there is none before `end`. */
function cstringEnd(buf: Buffer, pos: number, end: number, what: string): number {
  const nul = buf.indexOf(0, pos);
  if (nul === -1 || nul >= end) throw malformed(what);
  return nul;
}

/**
 * An Int16 count (parameters, formats, arguments). PostgreSQL reads counts as unsigned 16-bit
 * values, so a Bind may carry up to 65 535 parameters; reading them signed would reject valid
 * messages with more than 32 767.
 */
function count16(buf: Buffer, pos: number, end: number, what: string): number {
  if (pos + 2 > end) throw malformed(what);
  return buf.readUInt16BE(pos);
}

function int32(buf: Buffer, pos: number, end: number, what: string): number {
  if (pos + 4 > end) throw malformed(what);
  return buf.readInt32BE(pos);
}

/** Query (`Q`): the SQL text. */
export function decodeQuery(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, cstringEnd(buf, start, end, 'Query'));
}

/** Parse (`P`): statement name, SQL text and the number of parameter types given. */
export function decodeParse(
  buf: Buffer,
  start: number,
  end: number,
): { name: string; query: string; paramTypes: number } {
  const nameEnd = cstringEnd(buf, start, end, 'Parse');
  const queryEnd = cstringEnd(buf, nameEnd + 1, end, 'Parse');
  return {
    name: buf.toString('utf8', start, nameEnd),
    query: buf.toString('utf8', nameEnd + 1, queryEnd),
    paramTypes: count16(buf, queryEnd + 1, end, 'Parse'),
  };
}

/** Bind (`B`): portal, statement and the number of parameter values. */
export function decodeBind(
  buf: Buffer,
  start: number,
  end: number,
): { portal: string; statement: string; params: number } {
  const portalEnd = cstringEnd(buf, start, end, 'Bind');
  const statementEnd = cstringEnd(buf, portalEnd + 1, end, 'Bind');
  const formats = count16(buf, statementEnd + 1, end, 'Bind');
  const paramsAt = statementEnd + 3 + formats * 2;
  const params = count16(buf, paramsAt, end, 'Bind');
  return {
    portal: buf.toString('utf8', start, portalEnd),
    statement: buf.toString('utf8', portalEnd + 1, statementEnd),
    params,
  };
}

/** Execute (`E`): portal and row limit (0 = all). */
export function decodeExecute(
  buf: Buffer,
  start: number,
  end: number,
): { portal: string; maxRows: number } {
  const portalEnd = cstringEnd(buf, start, end, 'Execute');
  return {
    portal: buf.toString('utf8', start, portalEnd),
    maxRows: int32(buf, portalEnd + 1, end, 'Execute'),
  };
}

/** Close (`C`) and Describe (`D`): whether a statement or a portal, and its name. */
export function decodeTarget(
  buf: Buffer,
  start: number,
  end: number,
): { target: 'statement' | 'portal'; name: string } {
  if (start >= end) throw malformed('Close/Describe');
  const kind = buf[start];
  if (kind !== 0x53 && kind !== 0x50) throw malformed('Close/Describe');
  const nameEnd = cstringEnd(buf, start + 1, end, 'Close/Describe');
  return {
    target: kind === 0x53 ? 'statement' : 'portal',
    name: buf.toString('utf8', start + 1, nameEnd),
  };
}

/** FunctionCall (`F`): function OID and argument count. */
export function decodeFunctionCall(
  buf: Buffer,
  start: number,
  end: number,
): { functionOid: number; args: number } {
  const functionOid = int32(buf, start, end, 'FunctionCall') >>> 0;
  const formats = count16(buf, start + 4, end, 'FunctionCall');
  const args = count16(buf, start + 6 + formats * 2, end, 'FunctionCall');
  return { functionOid, args };
}

/** PasswordMessage (`p`): the password as text (the client's gateway token). */
export function decodePassword(buf: Buffer, start: number, end: number): string {
  return buf.toString('utf8', start, cstringEnd(buf, start, end, 'PasswordMessage'));
}

/** CommandComplete (`C`): the command tag, e.g. `INSERT 0 5`. */
export function decodeCommandComplete(buf: Buffer, start: number, end: number): string {
  return buf.toString('latin1', start, cstringEnd(buf, start, end, 'CommandComplete'));
}

/** Rows a command tag reports (`SELECT 5`, `INSERT 0 5`, `COPY 5`, …); 0 when it names none. */
export function rowsFromCommandTag(tag: string): number {
  const space = tag.lastIndexOf(' ');
  if (space === -1) return 0;
  const rows = Number(tag.slice(space + 1));
  return Number.isSafeInteger(rows) ? rows : 0;
}

/** Fields of an ErrorResponse or NoticeResponse, keyed by their one-letter codes. */
export interface ErrorFields {
  readonly severity: string;
  readonly code: string;
  readonly message: string;
  readonly detail?: string;
  readonly hint?: string;
}

/** ErrorResponse (`E`) or NoticeResponse (`N`). */
export function decodeErrorFields(buf: Buffer, start: number, end: number): ErrorFields {
  let severity = '';
  let code = '';
  let message = '';
  let detail: string | undefined;
  let hint: string | undefined;
  let pos = start;
  for (;;) {
    if (pos >= end) throw malformed('ErrorResponse'); // the list ends with a zero byte
    const field = buf[pos]!;
    if (field === 0) break;
    const valueEnd = cstringEnd(buf, pos + 1, end, 'ErrorResponse');
    const value = buf.toString('utf8', pos + 1, valueEnd);
    switch (field) {
      case 0x53: // S
        severity = value;
        break;
      case 0x43: // C
        code = value;
        break;
      case 0x4d: // M
        message = value;
        break;
      case 0x44: // D
        detail = value;
        break;
      case 0x48: // H
        hint = value;
        break;
    }
    pos = valueEnd + 1;
  }
  return {
    severity,
    code,
    message,
    ...(detail === undefined ? {} : { detail }),
    ...(hint === undefined ? {} : { hint }),
  };
}

/** ParameterStatus (`S`): name and value. */
export function decodeParameterStatus(
  buf: Buffer,
  start: number,
  end: number,
): { name: string; value: string } {
  const nameEnd = cstringEnd(buf, start, end, 'ParameterStatus');
  const valueEnd = cstringEnd(buf, nameEnd + 1, end, 'ParameterStatus');
  return {
    name: buf.toString('utf8', start, nameEnd),
    value: buf.toString('utf8', nameEnd + 1, valueEnd),
  };
}

/** BackendKeyData (`K`): the server's process id and cancel secret. */
export function decodeBackendKeyData(
  buf: Buffer,
  start: number,
  end: number,
): { processId: number; secretKey: number } {
  if (end - start !== 8) throw malformed('BackendKeyData');
  return { processId: buf.readInt32BE(start), secretKey: buf.readInt32BE(start + 4) };
}

/** ReadyForQuery (`Z`): transaction status `I` (idle), `T` (in a block) or `E` (failed block). */
export function decodeReadyForQuery(buf: Buffer, start: number, end: number): 'I' | 'T' | 'E' {
  const status = end - start === 1 ? String.fromCharCode(buf[start]!) : '';
  if (status !== 'I' && status !== 'T' && status !== 'E') throw malformed('ReadyForQuery');
  return status;
}

/** An Authentication (`R`) request. */
export type AuthenticationRequest =
  | { readonly code: number; readonly kind: 'ok' | 'cleartext' | 'other' }
  | { readonly code: number; readonly kind: 'md5'; readonly salt: Buffer }
  | { readonly code: number; readonly kind: 'sasl'; readonly mechanisms: readonly string[] }
  | { readonly code: number; readonly kind: 'sasl-continue' | 'sasl-final'; readonly data: string };

/** Authentication (`R`): the method the server asks for, with its salt or SASL data. */
export function decodeAuthentication(
  buf: Buffer,
  start: number,
  end: number,
): AuthenticationRequest {
  const code = int32(buf, start, end, 'Authentication');
  switch (code) {
    case 0:
      return { code, kind: 'ok' };
    case 3:
      return { code, kind: 'cleartext' };
    case 5:
      if (end - start !== 8) throw malformed('AuthenticationMD5Password');
      return { code, kind: 'md5', salt: Buffer.from(buf.subarray(start + 4, end)) };
    case 10: {
      const mechanisms: string[] = [];
      let pos = start + 4;
      for (;;) {
        if (pos >= end) throw malformed('AuthenticationSASL'); // the list ends with a zero byte
        if (buf[pos] === 0) break;
        const nameEnd = cstringEnd(buf, pos, end, 'AuthenticationSASL');
        mechanisms.push(buf.toString('utf8', pos, nameEnd));
        pos = nameEnd + 1;
      }
      return { code, kind: 'sasl', mechanisms };
    }
    case 11:
    case 12:
      return {
        code,
        kind: code === 11 ? 'sasl-continue' : 'sasl-final',
        data: buf.toString('utf8', start + 4, end),
      };
    default:
      return { code, kind: 'other' };
  }
}

/** One field of a RowDescription. */
export interface RowField {
  readonly name: string;
  /** OID of the table the column comes from; 0 when the field is not a plain table column. */
  readonly tableOid: number;
  /** The column's attribute number in that table (`pg_attribute.attnum`); 0 when none. */
  readonly columnAttr: number;
  readonly typeOid: number;
  /** `pg_type.typlen`: negative for variable-width types. */
  readonly typeSize: number;
  readonly typeModifier: number;
  /** 0 = text, 1 = binary. */
  readonly format: number;
}

/** RowDescription (`T`): the fields of the rows that follow. */
export function decodeRowDescription(buf: Buffer, start: number, end: number): RowField[] {
  const count = count16(buf, start, end, 'RowDescription');
  const fields: RowField[] = [];
  let pos = start + 2;
  for (let i = 0; i < count; i++) {
    const nameEnd = cstringEnd(buf, pos, end, 'RowDescription');
    const name = buf.toString('utf8', pos, nameEnd);
    pos = nameEnd + 1;
    if (pos + 18 > end) throw malformed('RowDescription');
    fields.push({
      name,
      tableOid: buf.readUInt32BE(pos),
      columnAttr: buf.readInt16BE(pos + 4),
      typeOid: buf.readUInt32BE(pos + 6),
      typeSize: buf.readInt16BE(pos + 10),
      typeModifier: buf.readInt32BE(pos + 12),
      format: buf.readInt16BE(pos + 16),
    });
    pos += 18;
  }
  if (pos !== end) throw malformed('RowDescription');
  return fields;
}

/**
 * DataRow (`D`): the column values as text (UTF-8; null for SQL NULL). For the gateway's own
 * text-format queries (catalog reads); relayed rows are never decoded.
 */
export function decodeDataRow(buf: Buffer, start: number, end: number): (string | null)[] {
  const count = count16(buf, start, end, 'DataRow');
  const values: (string | null)[] = [];
  let pos = start + 2;
  for (let i = 0; i < count; i++) {
    const length = int32(buf, pos, end, 'DataRow');
    pos += 4;
    if (length === -1) {
      values.push(null);
      continue;
    }
    if (length < -1 || length > end - pos) throw malformed('DataRow');
    values.push(buf.toString('utf8', pos, pos + length));
    pos += length;
  }
  if (pos !== end) throw malformed('DataRow');
  return values;
}
