import { PortcullisError } from '@portcullis/core';

function malformed(): PortcullisError {
  return new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'malformed Bind message');
}

/**
 * The result-column format codes of a Bind (`B`) body `buf[start, end)`: empty = all text, one
 * code = every column, else one per column (0 text, 1 binary). Walks past the parameter
 * formats and values; a body that ends early or carries a code other than 0 or 1 throws
 * PCL_ERR_PROTOCOL_MALFORMED.
 */
export function decodeBindResultFormats(buf: Buffer, start: number, end: number): number[] {
  let pos = buf.indexOf(0, start);
  if (pos === -1 || pos >= end) throw malformed();
  pos = buf.indexOf(0, pos + 1);
  if (pos === -1 || pos >= end) throw malformed();
  pos++;
  const u16 = (): number => {
    if (pos + 2 > end) throw malformed();
    const value = buf.readUInt16BE(pos);
    pos += 2;
    return value;
  };
  const paramFormats = u16();
  pos += 2 * paramFormats;
  const params = u16();
  for (let i = 0; i < params; i++) {
    if (pos + 4 > end) throw malformed();
    const length = buf.readInt32BE(pos);
    pos += 4;
    if (length < -1 || length > end - pos) throw malformed();
    if (length > 0) pos += length;
  }
  const count = u16();
  const formats: number[] = [];
  for (let i = 0; i < count; i++) {
    const code = u16();
    if (code !== 0 && code !== 1) throw malformed();
    formats.push(code);
  }
  if (pos !== end) throw malformed();
  return formats;
}
