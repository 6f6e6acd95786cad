import { crc32c } from './crc32c.js';

// On-disk layout of a spool segment. All integers are little-endian.
//
// Segment header, 32 bytes:
//   0  magic "PCLSPOOL" (8 bytes)
//   8  u16 format version (SEGMENT_FORMAT_VERSION)
//  10  u16 header length (32)
//  12  u32 reserved, 0
//  16  u64 sequence of the segment's first record (also the file name)
//  24  u32 reserved, 0
//  28  u32 CRC-32C of bytes 0..27
//
// Record, 16 bytes + payload:
//   0  u32 CRC-32C of bytes 4 .. 16+length (length, sequence and payload)
//   4  u32 payload length
//   8  u64 sequence (strictly increasing through the spool; gaps are allowed)
//  16  payload (one event's JSON as UTF-8)

/** The magic every segment starts with. */
export const SEGMENT_MAGIC = Buffer.from('PCLSPOOL', 'latin1');
/** The segment format this build writes and the newest it reads. */
export const SEGMENT_FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 32;
export const RECORD_HEADER_BYTES = 16;
/** Sequences are kept in a JS number; the high word of the u64 never passes 2^21. */
const MAX_SEQ_HIGH = 0x1fffff;
const TWO_32 = 0x1_0000_0000;

/** Returned by {@link checkRecord}: the bytes end before the record does. */
export const RECORD_SHORT = -1;
/** Returned by {@link checkRecord}: the bytes are not a valid record. */
export const RECORD_BAD = -2;

/** Segment file name for a first sequence: 20 digits, so names sort like numbers. */
export function segmentFileName(firstSequence: number): string {
  return `${String(firstSequence).padStart(20, '0')}.seg`;
}

/** The first sequence a segment file name stands for, or -1 when it is not a segment name. */
export function parseSegmentFileName(name: string): number {
  if (!/^\d{20}\.seg$/.test(name)) return -1;
  const n = Number(name.slice(0, 20));
  return Number.isSafeInteger(n) ? n : -1;
}

/** A fresh segment header. */
export function encodeSegmentHeader(firstSequence: number): Buffer {
  const header = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(header, 0);
  header.writeUInt16LE(SEGMENT_FORMAT_VERSION, 8);
  header.writeUInt16LE(SEGMENT_HEADER_BYTES, 10);
  writeSequence(header, 16, firstSequence);
  header.writeUInt32LE(crc32c(header, 0, 28), 28);
  return header;
}

/** What a segment header says, or why it is unusable. */
export type SegmentHeaderCheck =
  | { readonly ok: true; readonly firstSequence: number }
  | { readonly ok: false; readonly newerVersion: number | null; readonly reason: string };

/** Validates the first {@link SEGMENT_HEADER_BYTES} bytes of a segment. */
export function decodeSegmentHeader(bytes: Buffer): SegmentHeaderCheck {
  if (bytes.length < SEGMENT_HEADER_BYTES) {
    return { ok: false, newerVersion: null, reason: 'shorter than a segment header' };
  }
  if (!bytes.subarray(0, 8).equals(SEGMENT_MAGIC)) {
    return { ok: false, newerVersion: null, reason: 'not a spool segment (bad magic)' };
  }
  if (bytes.readUInt32LE(28) !== crc32c(bytes, 0, 28)) {
    return { ok: false, newerVersion: null, reason: 'segment header checksum mismatch' };
  }
  const version = bytes.readUInt16LE(8);
  if (version > SEGMENT_FORMAT_VERSION) {
    return { ok: false, newerVersion: version, reason: `segment format version ${version}` };
  }
  if (version !== SEGMENT_FORMAT_VERSION || bytes.readUInt16LE(10) !== SEGMENT_HEADER_BYTES) {
    return { ok: false, newerVersion: null, reason: `unknown segment format version ${version}` };
  }
  const firstSequence = readSequence(bytes, 16);
  if (firstSequence < 1) return { ok: false, newerVersion: null, reason: 'bad first sequence' };
  return { ok: true, firstSequence };
}

/** Writes a sequence as u64 LE. */
export function writeSequence(bytes: Buffer, offset: number, sequence: number): void {
  bytes.writeUInt32LE(sequence % TWO_32, offset);
  bytes.writeUInt32LE(Math.floor(sequence / TWO_32), offset + 4);
}

/** Reads a u64 LE sequence; -1 when it does not fit a safe integer. */
export function readSequence(bytes: Buffer, offset: number): number {
  const high = bytes.readUInt32LE(offset + 4);
  if (high > MAX_SEQ_HIGH) return -1;
  return high * TWO_32 + bytes.readUInt32LE(offset);
}

/**
 * Frames a record in place: `bytes[offset+16, offset+16+length)` already holds the payload; this
 * writes the length, the sequence and the checksum in front of it.
 */
export function frameRecord(bytes: Buffer, offset: number, length: number, sequence: number): void {
  bytes.writeUInt32LE(length, offset + 4);
  writeSequence(bytes, offset + 8, sequence);
  bytes.writeUInt32LE(crc32c(bytes, offset + 4, offset + RECORD_HEADER_BYTES + length), offset);
}

/**
 * Checks the record at `bytes[offset..end)`: returns its payload length when it is whole, its
 * length fits `maxRecordBytes`, its sequence is above `previousSequence` and its checksum holds;
 * {@link RECORD_SHORT} when the bytes end first (a longer read may tell); {@link RECORD_BAD}
 * otherwise. The cheap tests come first, so scanning garbage for the next record costs little.
 */
export function checkRecord(
  bytes: Buffer,
  offset: number,
  end: number,
  previousSequence: number,
  maxRecordBytes: number,
): number {
  if (end - offset < RECORD_HEADER_BYTES) return RECORD_SHORT;
  const length = bytes.readUInt32LE(offset + 4);
  if (length > maxRecordBytes) return RECORD_BAD;
  const sequence = readSequence(bytes, offset + 8);
  if (sequence <= previousSequence) return RECORD_BAD;
  if (end - offset - RECORD_HEADER_BYTES < length) return RECORD_SHORT;
  const stored = bytes.readUInt32LE(offset);
  if (crc32c(bytes, offset + 4, offset + RECORD_HEADER_BYTES + length) !== stored) {
    return RECORD_BAD;
  }
  return length;
}

/** Where a scan of one segment stands; carried from one read window to the next. */
export interface SegmentScan {
  /** File offset of the next byte to look at. */
  pos: number;
  previousSequence: number;
  /** File offset where the current run of unreadable bytes began, -1 when none. */
  corruptFrom: number;
  /** After a scan stopped short: bytes the next window must hold from `pos` (0 = any). */
  need: number;
}

/** What {@link scanWindow} reports. */
export interface SegmentScanVisitor {
  /** A valid record; return false to stop the scan after it. */
  record(sequence: number, bytes: Buffer, start: number, end: number, fileOffset: number): boolean;
  /**
   * The start of unreadable bytes at `fileOffset`; return a file offset to jump to when the run
   * is already known (it is then not reported again), or -1 to search for the next record.
   */
  corrupt(fileOffset: number): number;
  /**
   * Unreadable bytes `[from, to)` were skipped; `nextSequence` is the sequence of the record found
   * after them, or -1 when they ran to the end of the scanned range.
   */
  skipped(from: number, to: number, nextSequence: number): void;
}

/**
 * Scans the records in `bytes`, which holds the file's bytes from offset `base` on. Stops at the
 * end of the window (`scan.need` > 0 when a record runs past it and `atEnd` is false), or when
 * the visitor says so. After a bad record it moves on byte by byte until a record validates
 * (resync), so it always makes progress and never loops.
 */
export function scanWindow(
  bytes: Buffer,
  base: number,
  scan: SegmentScan,
  atEnd: boolean,
  maxRecordBytes: number,
  visitor: SegmentScanVisitor,
): void {
  const end = base + bytes.length;
  scan.need = 0;
  while (scan.pos < end) {
    const i = scan.pos - base;
    const length = checkRecord(bytes, i, bytes.length, scan.previousSequence, maxRecordBytes);
    if (length >= 0) {
      const sequence = readSequence(bytes, i + 8);
      if (scan.corruptFrom >= 0) {
        visitor.skipped(scan.corruptFrom, scan.pos, sequence);
        scan.corruptFrom = -1;
      }
      const more = visitor.record(
        sequence,
        bytes,
        i + RECORD_HEADER_BYTES,
        i + RECORD_HEADER_BYTES + length,
        scan.pos,
      );
      scan.pos += RECORD_HEADER_BYTES + length;
      scan.previousSequence = sequence;
      if (!more) return;
      continue;
    }
    if (length === RECORD_SHORT && !atEnd) {
      scan.need =
        bytes.length - i < RECORD_HEADER_BYTES
          ? RECORD_HEADER_BYTES
          : RECORD_HEADER_BYTES + bytes.readUInt32LE(i + 4);
      return;
    }
    if (scan.corruptFrom < 0) {
      const jump = visitor.corrupt(scan.pos);
      if (jump > scan.pos) {
        scan.pos = jump;
        continue;
      }
      scan.corruptFrom = scan.pos;
    }
    scan.pos += 1;
  }
  if (atEnd && scan.corruptFrom >= 0) {
    visitor.skipped(scan.corruptFrom, end, -1);
    scan.corruptFrom = -1;
  }
}
