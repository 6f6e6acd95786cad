import { appendFile, open, readdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import { crc32c } from './crc32c.js';
import { encodeSegmentHeader, segmentFileName } from './segment-format.js';
import { Spool, type SpoolCorruptionReport } from './spool.js';
import { drain, payload, removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

const RECORD = 16 + 100; // every payload(i) below is 100 bytes
const recordOffset = (k: number) => 32 + (k - 1) * RECORD; // k-th record of a segment

/** A spool directory holding records 1..n in its first segment, closed. */
async function spoolWith(n: number, options: { segmentBytes?: number } = {}): Promise<string> {
  const dir = await tempDir();
  const spool = await Spool.open({ dir, ...options, maxBytes: 1024 * 1024 });
  for (let i = 1; i <= n; i++) spool.append(payload(i));
  await spool.close();
  return dir;
}

async function reopen(dir: string) {
  const reports: SpoolCorruptionReport[] = [];
  const warnings: string[] = [];
  const spool = await Spool.open({
    dir,
    maxBytes: 1024 * 1024,
    onCorruption: (r) => reports.push(r),
    logger: {
      debug() {},
      info() {},
      warn: (_obj, msg) => warnings.push(msg ?? ''),
      error() {},
    },
  });
  return { spool, reports, warnings };
}

async function patch(path: string, offset: number, bytes: Buffer): Promise<void> {
  const file = await open(path, 'r+');
  await file.write(bytes, 0, bytes.length, offset);
  await file.close();
}

const first = (dir: string) => join(dir, segmentFileName(1));
const sequences = (records: [number, string][]) => records.map(([s]) => s);

describe('Spool recovery', () => {
  it('truncates a torn tail (a partial record after a crash) and reports it', async () => {
    const dir = await spoolWith(5);
    const size = (await stat(first(dir))).size;
    // The start of record 6: a whole header announcing 100 bytes, then only 30 of them.
    const torn = Buffer.alloc(16 + 30, 0x41);
    torn.writeUInt32LE(100, 4);
    torn.writeUInt32LE(6, 8);
    torn.writeUInt32LE(0, 12);
    await appendFile(first(dir), torn);

    const { spool, reports } = await reopen(dir);
    expect(reports).toEqual([
      expect.objectContaining({
        kind: 'torn-tail',
        file: segmentFileName(1),
        offset: size,
        bytes: 46,
      }),
    ]);
    expect(spool.tornTailBytes).toBe(46);
    expect(spool.corruptedRecords).toBe(0);
    expect((await stat(first(dir))).size).toBe(size);
    const reader = await spool.openReader('a');
    const got = await drain(reader);
    expect(got).toEqual([1, 2, 3, 4, 5].map((i) => [i, payload(i)]));
    expect(spool.append('after')).toBe(6);
    await spool.flush();
    expect(await drain(reader)).toEqual([[6, 'after']]);
    await spool.close();
  });

  it('truncates a tail of zeros (space allocated, never written)', async () => {
    const dir = await spoolWith(3);
    await appendFile(first(dir), Buffer.alloc(4096));
    const { spool, reports } = await reopen(dir);
    expect(reports.map((r) => [r.kind, r.bytes])).toEqual([['torn-tail', 4096]]);
    expect(sequences(await drain(await spool.openReader('a')))).toEqual([1, 2, 3]);
    await spool.close();
  });

  it('skips a record with a bad checksum in the middle and recovers the rest', async () => {
    const dir = await spoolWith(10);
    await patch(first(dir), recordOffset(5) + 16 + 10, Buffer.from('#'));
    const { spool, reports, warnings } = await reopen(dir);
    expect(reports).toEqual([
      expect.objectContaining({
        kind: 'corrupt-records',
        file: segmentFileName(1),
        offset: recordOffset(5),
        bytes: RECORD,
        records: 1,
      }),
    ]);
    expect(warnings.some((w) => w.includes('skipped 116 unreadable bytes'))).toBe(true);
    expect(spool.corruptedRecords).toBe(1);
    expect(spool.corruptedBytes).toBe(RECORD);
    const got = await drain(await spool.openReader('a'));
    expect(got).toEqual([1, 2, 3, 4, 6, 7, 8, 9, 10].map((i) => [i, payload(i)]));
    // A second consumer passes the same spot without a second report.
    expect(sequences(await drain(await spool.openReader('b')))).toEqual([
      1, 2, 3, 4, 6, 7, 8, 9, 10,
    ]);
    expect(reports.length).toBe(1);
    expect(spool.corruptedRecords).toBe(1);
    await spool.close();
  });

  it('skips records behind an impossible length and resyncs on the next valid header', async () => {
    const dir = await spoolWith(10);
    const huge = Buffer.alloc(4);
    huge.writeUInt32LE(0xfffffff0);
    await patch(first(dir), recordOffset(3) + 4, huge);
    // And wipe records 7 and 8 entirely.
    await patch(first(dir), recordOffset(7), Buffer.alloc(2 * RECORD, 0xff));
    const { spool, reports } = await reopen(dir);
    expect(reports.map((r) => [r.kind, r.offset, r.bytes, r.records])).toEqual([
      ['corrupt-records', recordOffset(3), RECORD, 1],
      ['corrupt-records', recordOffset(7), 2 * RECORD, 2],
    ]);
    expect(spool.corruptedRecords).toBe(3);
    expect(sequences(await drain(await spool.openReader('a')))).toEqual([1, 2, 4, 5, 6, 9, 10]);
    await spool.close();
  });

  it('skips a corrupt tail of an older segment without truncating it', async () => {
    const dir = await spoolWith(20, { segmentBytes: 1024 }); // 8 records per segment
    await patch(first(dir), recordOffset(8) + 20, Buffer.from('garbage'));
    const size = (await stat(first(dir))).size;
    const { spool, reports } = await reopen(dir);
    expect(reports.map((r) => [r.kind, r.offset, r.bytes, r.records])).toEqual([
      ['corrupt-records', recordOffset(8), RECORD, 1],
    ]);
    expect((await stat(first(dir))).size).toBe(size);
    const got = sequences(await drain(await spool.openReader('a')));
    expect(got).toEqual(Array.from({ length: 20 }, (_, i) => i + 1).filter((s) => s !== 8));
    await spool.close();
  });

  it('reports corruption that appears on disk while the spool is open, and reads on', async () => {
    const dir = await tempDir();
    const reports: SpoolCorruptionReport[] = [];
    const spool = await Spool.open({ dir, onCorruption: (r) => reports.push(r) });
    for (let i = 1; i <= 6; i++) spool.append(payload(i));
    await spool.flush();
    await patch(first(dir), recordOffset(2) + 30, Buffer.from('!'));
    expect(sequences(await drain(await spool.openReader('a')))).toEqual([1, 3, 4, 5, 6]);
    expect(reports.map((r) => [r.kind, r.offset, r.bytes, r.records])).toEqual([
      ['corrupt-records', recordOffset(2), RECORD, 1],
    ]);
    expect(spool.corruptedRecords).toBe(1);
    await spool.close();
  });

  it('ignores stray files and segments without a valid header, with a report', async () => {
    const dir = await spoolWith(3);
    await writeFile(join(dir, 'notes.txt'), 'hello');
    const junk = Buffer.alloc(200);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 151 + 7) & 0xff;
    await writeFile(join(dir, segmentFileName(99)), junk);
    const { spool, reports } = await reopen(dir);
    expect(reports.map((r) => [r.kind, r.file])).toEqual(
      expect.arrayContaining([
        ['unknown-file', 'notes.txt'],
        ['bad-segment', segmentFileName(99)],
      ]),
    );
    expect(reports.length).toBe(2);
    expect(sequences(await drain(await spool.openReader('a')))).toEqual([1, 2, 3]);
    expect(spool.append('next')).toBe(4);
    await spool.close();
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('hello');
  });

  it('removes a last segment that was created but never got its header', async () => {
    const dir = await spoolWith(3);
    await writeFile(join(dir, segmentFileName(4)), Buffer.from('PCLSP'));
    const { spool, reports } = await reopen(dir);
    expect(reports.map((r) => [r.kind, r.bytes])).toEqual([['torn-tail', 5]]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.seg')).sort()).toEqual([
      segmentFileName(1),
      segmentFileName(4),
    ]);
    expect(spool.append('x')).toBe(4);
    await spool.close();
  });

  it('refuses a segment in a newer format version with a clear error and changes nothing', async () => {
    const dir = await spoolWith(2);
    const header = encodeSegmentHeader(3);
    header.writeUInt16LE(2, 8);
    header.writeUInt32LE(crc32c(header, 0, 28), 28);
    const newer = join(dir, segmentFileName(3));
    await writeFile(newer, header);
    const before = await readdir(dir);
    let err: unknown;
    try {
      await Spool.open({ dir });
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'PCL_ERR_EVENTS_READ')).toBe(true);
    expect((err as Error).message).toMatch(/format version 2; this build reads version 1/);
    expect((await readdir(dir)).sort()).toEqual(before.sort());
    await unlink(newer);
    const { spool } = await reopen(dir);
    expect(sequences(await drain(await spool.openReader('a')))).toEqual([1, 2]);
    await spool.close();
  });

  it('restarts consumers from the oldest record when the offsets file is unreadable', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir });
    for (let i = 1; i <= 3; i++) spool.append(payload(i));
    await spool.flush();
    const reader = await spool.openReader('a');
    await drain(reader);
    await reader.ack(3);
    await spool.close();
    await writeFile(join(dir, 'offsets.json'), '{"version":1,"consu');
    const { spool: again, reports } = await reopen(dir);
    expect(reports.map((r) => r.kind)).toEqual(['bad-offsets']);
    expect(sequences(await drain(await again.openReader('a')))).toEqual([1, 2, 3]);
    await again.close();
  });

  it('does not reuse sequences after every segment was acknowledged and deleted', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir, segmentBytes: 1024, maxBytes: 64 * 1024 });
    const reader = await spool.openReader('a');
    for (let i = 1; i <= 30; i++) spool.append(payload(i));
    await spool.flush();
    await drain(reader);
    await reader.ack(30);
    await spool.close();
    const again = await Spool.open({ dir });
    expect(again.append('next')).toBe(31);
    expect(await drain(await again.openReader('a'))).toEqual([]);
    await again.flush();
    await again.close();
  });
});
