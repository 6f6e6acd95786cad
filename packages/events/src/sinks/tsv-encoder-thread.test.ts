import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SessionEvent } from '@portcullis/core';
import { Spool } from '../spool/spool.js';
import { SpoolReadRecord, type SpoolRecord } from '../spool/spool-reader.js';
import { columnsOf } from './clickhouse-columns.js';
import { sinkTestEvent } from './sink-test-event.fixture.js';
import { encodeEventTsv } from './event-tsv.js';
import { TsvEncoderThread } from './tsv-encoder-thread.js';
import type { TsvLines } from './tsv-lines.js';

const COLUMNS = columnsOf('legacy18');

/** What each record must become: its line by the JSON.parse path, or null when it is no event. */
function expectedLines(records: readonly SpoolRecord[]): (string | null)[] {
  return records.map((record) => {
    try {
      return encodeEventTsv(JSON.parse(record.payload.toString('utf8')) as SessionEvent, COLUMNS);
    } catch {
      return null;
    }
  });
}

/** The lines the thread made, one per record, null where it found no event. */
function linesOf(lines: TsvLines): (string | null)[] {
  let start = 0;
  return Array.from(lines.ends, (end) => {
    if (end < 0) return null;
    const line = lines.lines.toString('utf8', start, end);
    start = end;
    return line;
  });
}

describe('TsvEncoderThread', () => {
  let dir: string;
  let spool: Spool;
  const thread = new TsvEncoderThread('legacy18');
  const payloads: string[] = Array.from({ length: 3_000 }, (_, i) =>
    JSON.stringify(sinkTestEvent(i, { resource: `r\t${i}'\\😀` })),
  );
  // Left to JSON.parse (a number where a string belongs), and no event at all.
  payloads[7] = JSON.stringify(sinkTestEvent(7)).replace('"resource":"payments"', '"resource":5');
  payloads[8] = 'not json';
  payloads[2_999] = '{"schema":1}';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-tsv-thread-'));
    spool = await Spool.open({ dir: join(dir, 'spool') });
    for (const payload of payloads) spool.append(payload);
    await spool.flush();
  });

  afterAll(async () => {
    await thread.close();
    await spool.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('encodes records read from the spool, in place in their read buffers, as the JSON.parse path does', async () => {
    // Small reads, so one job spans several read buffers.
    const reader = await spool.openReader('thread', { readBytes: 64 * 1024 });
    const records: SpoolRecord[] = [];
    for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
      records.push(...batch.records);
    }
    await reader.close();
    expect(records).toHaveLength(payloads.length);
    expect(records.every((r) => r instanceof SpoolReadRecord)).toBe(true);
    expect(new Set(records.map((r) => (r as SpoolReadRecord).buffer)).size).toBeGreaterThan(10);
    // Jobs of several sizes, one after another, so the thread's job memory is reused.
    for (const size of [3_000, 1_000, 10, 2_500]) {
      const slice = records.slice(0, size);
      const lines = await thread.encode(slice);
      expect(linesOf(lines)).toEqual(expectedLines(slice));
      const failed = lines.errors.map(([index]) => index);
      expect(failed).toEqual(size > 2_999 ? [8, 2_999] : size > 8 ? [8] : []);
    }
  });

  it('writes the lines of later jobs into the memory of lines given back', async () => {
    const records: SpoolRecord[] = payloads.map((payload, i) => ({
      sequence: i + 1,
      payload: Buffer.from(payload),
    }));
    const first = await thread.encode(records.slice(0, 1_000));
    const memory = first.lines.buffer;
    const size = memory.byteLength;
    thread.recycle([first.lines]);
    // Moved to the thread for the next (smaller) job, and back with its lines.
    const second = await thread.encode(records.slice(1_000, 1_900));
    expect(memory.byteLength).toBe(0);
    expect(second.lines.buffer.byteLength).toBe(size);
    expect(linesOf(second)).toEqual(expectedLines(records.slice(1_000, 1_900)));
    // Too small for a larger job: that one gets memory of its own.
    thread.recycle([second.lines]);
    const third = await thread.encode(records);
    expect(third.lines.buffer.byteLength).toBeGreaterThan(size);
    expect(linesOf(third)).toEqual(expectedLines(records));
  });

  it('fails the job a dying thread had, and encodes the next one on a new thread', async () => {
    const records: SpoolRecord[] = Array.from({ length: 20_000 }, (_, i) => ({
      sequence: i + 1,
      payload: Buffer.from(payloads[i % 3_000]!),
    }));
    await thread.encode(records.slice(0, 10));
    const job = thread.encode(records);
    await thread.workers[0]!.terminate();
    await expect(job).rejects.toThrow();
    const lines = await thread.encode(records.slice(0, 100));
    expect(linesOf(lines)).toEqual(expectedLines(records.slice(0, 100)));
  });

  it('encodes records that are not from the spool, and lines far longer than their JSON', async () => {
    // Each apostrophe in an array element is escaped: the line is about twice the JSON.
    const quotes = JSON.stringify(
      sinkTestEvent(1, { person: { subject: 'u', email: 'e', groups: ["'".repeat(70_000)] } }),
    );
    const records: SpoolRecord[] = [quotes, payloads[0]!, 'not json', quotes].map((payload, i) => ({
      sequence: i + 1,
      payload: Buffer.from(payload),
    }));
    const lines = await thread.encode(records);
    expect(linesOf(lines)).toEqual(expectedLines(records));
    expect(lines.errors).toEqual([[2, expect.any(String) as string]]);
  });
});
