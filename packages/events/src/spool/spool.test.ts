import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import { Spool } from './spool.js';
import { SpoolReadRecord, type SpoolBatch } from './spool-reader.js';
import { drain, payload, removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

const segmentFiles = async (dir: string) =>
  (await readdir(dir)).filter((name) => name.endsWith('.seg')).sort();

describe('Spool', () => {
  it('hands back appended records after flush, in order, and resumes after the ack', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir });
    const seqs = [spool.append('one'), spool.append(Buffer.from('two')), spool.append('три')];
    expect(seqs).toEqual([1, 2, 3]);
    expect(spool.lastSequence).toBe(3);
    await spool.flush();
    expect(spool.durableSequence).toBe(3);
    const reader = await spool.openReader('clickhouse');
    const batch = await reader.read();
    expect(batch?.records.map((r) => [r.sequence, r.payload.toString()])).toEqual([
      [1, 'one'],
      [2, 'two'],
      [3, 'три'],
    ]);
    expect(batch?.lastSequence).toBe(3);
    await reader.ack(2);
    await spool.close();

    const again = await Spool.open({ dir });
    expect(again.consumers().get('clickhouse')).toBe(2);
    const r2 = await again.openReader('clickhouse');
    expect(await drain(r2)).toEqual([[3, 'три']]);
    expect(again.append('four')).toBe(4);
    await again.close();
  });

  it('hands back at most the records a read or poll asks for, then carries on after them', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    for (let i = 1; i <= 7; i++) spool.append(`r${i}`);
    await spool.flush();
    const reader = await spool.openReader('kafka', { maxRecords: 4 });
    const sequences = async (batch: Promise<{ records: readonly { sequence: number }[] } | null>) =>
      (await batch)?.records.map((r) => r.sequence) ?? null;
    expect(await sequences(reader.read(2))).toEqual([1, 2]);
    expect(await sequences(reader.poll(100))).toEqual([3, 4, 5, 6]);
    expect(await sequences(reader.poll(0))).toEqual([7]);
    expect(await reader.poll()).toBeNull();
    await spool.close();
  });

  it('with recycleReads, reuses a read only once every record read into it is released', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    // 200-byte payloads, 216 bytes a record: 18 of them in each full 4 KiB read.
    for (let i = 0; i < 200; i++) spool.append(payload(i, 200));
    await spool.flush();
    const reader = await spool.openReader('ch', {
      readBytes: 4096,
      maxRecords: 10,
      recycleReads: true,
    });
    const memoryOf = (batch: SpoolBatch | null): ArrayBufferLike =>
      (batch!.records[0] as SpoolReadRecord).buffer.buffer;
    const texts = (batch: SpoolBatch | null) => batch!.records.map((r) => r.payload.toString());
    const first = await reader.read();
    const second = await reader.read();
    // Both from the first read; then the second read, the third.
    expect(memoryOf(second)).toBe(memoryOf(first));
    const third = await reader.read();
    const thirdTexts = texts(third);
    const fourth = await reader.read();
    expect(memoryOf(third)).not.toBe(memoryOf(first));
    // Half of the first read's records released: the reads after it get new memory.
    reader.release(first!.records);
    const fifth = await reader.read();
    const sixth = await reader.read();
    expect(memoryOf(sixth)).not.toBe(memoryOf(first));
    expect(texts(second)).toEqual(Array.from({ length: 8 }, (_, i) => payload(10 + i, 200)));
    // Released twice: the memory is never reused, whatever the count says.
    reader.release(fifth!.records);
    reader.release(fifth!.records);
    // The rest of the first: its memory takes the next read, the records handed out before it
    // are intact.
    reader.release([...second!.records, ...third!.records]);
    const next = [await reader.read(), await reader.read()].find(
      (batch) => memoryOf(batch) === memoryOf(first),
    );
    expect(next).toBeDefined();
    expect(texts(third)).toEqual(thirdTexts);
    expect(texts(fourth)).toEqual(fourth!.records.map((r) => payload(r.sequence - 1, 200)));
    // The rest, released as they come: memory is reused, the double-released never; every
    // record is the one appended at its sequence.
    const rest: SpoolBatch[] = [];
    for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
      expect(batch.records.map((r) => r.payload.toString())).toEqual(
        batch.records.map((r) => payload(r.sequence - 1, 200)),
      );
      reader.release(batch.records);
      rest.push(batch);
    }
    expect(rest.at(-1)?.lastSequence).toBe(200);
    const memories = new Set(rest.map(memoryOf));
    expect(memories.size).toBeLessThan(rest.length / 2);
    expect(memories.has(memoryOf(fifth))).toBe(false);
    await spool.close();
  });

  it('without recycleReads, release changes nothing', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    for (let i = 0; i < 40; i++) spool.append(payload(i, 200));
    await spool.flush();
    const reader = await spool.openReader('ch', { readBytes: 4096, maxRecords: 18 });
    const batches = [];
    for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
      reader.release(batch.records);
      batches.push(batch);
    }
    const memories = batches.map((b) => (b.records[0] as SpoolReadRecord).buffer.buffer);
    expect(new Set(memories).size).toBe(memories.length);
    expect(batches.flatMap((b) => b.records.map((r) => r.payload.toString()))).toEqual(
      Array.from({ length: 40 }, (_, i) => payload(i, 200)),
    );
    await spool.close();
  });

  it('makes records durable within the batch delay without a flush', async () => {
    const spool = await Spool.open({ dir: await tempDir(), batchDelayMs: 2 });
    const reader = await spool.openReader('a');
    spool.append('x');
    const batch = await reader.read();
    expect(batch?.records[0]?.payload.toString()).toBe('x');
    await spool.close();
  });

  it('wakes a waiting reader when records become durable, and ends it on close', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    const reader = await spool.openReader('a');
    const pending = reader.read();
    await new Promise((r) => setTimeout(r, 20));
    spool.append('late');
    await spool.flush();
    expect((await pending)?.records[0]?.payload.toString()).toBe('late');
    const waiting = reader.read();
    await spool.close();
    expect(await waiting).toBeNull();
  });

  it('serves several consumers at their own positions', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir });
    const a = await spool.openReader('a');
    const b = await spool.openReader('b', { maxRecords: 3 });
    for (let i = 1; i <= 10; i++) spool.append(payload(i));
    await spool.flush();
    const fromA = await drain(a);
    expect(fromA.map(([s]) => s)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const firstB = await b.read();
    expect(firstB?.records.map((r) => r.sequence)).toEqual([1, 2, 3]);
    await a.ack(10);
    await b.ack(3);
    expect(spool.lag('a')).toEqual({ records: 0, bytes: 0 });
    expect(spool.lag('b').records).toBe(7);
    expect(spool.lag('b').bytes).toBe(7 * (16 + 100));
    await spool.close();

    const again = await Spool.open({ dir });
    expect(await drain(await again.openReader('a'))).toEqual([]);
    expect((await drain(await again.openReader('b'))).map(([s]) => s)).toEqual([
      4, 5, 6, 7, 8, 9, 10,
    ]);
    await again.close();
  });

  it('rolls segments and deletes them once every consumer has acknowledged them', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir, segmentBytes: 1024, maxBytes: 64 * 1024 });
    const a = await spool.openReader('a');
    const b = await spool.openReader('b');
    for (let i = 1; i <= 40; i++) spool.append(payload(i)); // 116 bytes each: 8 per segment
    await spool.flush();
    const files = await segmentFiles(dir);
    expect(files.length).toBe(5);
    for (const f of files) expect((await stat(join(dir, f))).size).toBeLessThanOrEqual(1024);
    const all = await drain(a);
    expect(all.map(([s]) => s)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(all[39]![1]).toBe(payload(40));
    await a.ack(40);
    expect(await segmentFiles(dir)).toEqual(files); // b still needs them
    await drain(b);
    await b.ack(20);
    const left = await segmentFiles(dir);
    expect(left).toEqual(files.slice(2)); // records 1..16 gone, 17.. kept
    expect(spool.diskBytes).toBe(
      (await Promise.all(left.map((f) => stat(join(dir, f))))).reduce((n, s) => n + s.size, 0),
    );
    await b.ack(40);
    expect(await segmentFiles(dir)).toEqual(files.slice(4));
    await spool.close();
  });

  it('keeps segments no consumer has registered for, and starts new consumers at the oldest', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir, segmentBytes: 1024, maxBytes: 64 * 1024 });
    for (let i = 1; i <= 20; i++) spool.append(payload(i));
    await spool.flush();
    const late = await spool.openReader('late');
    expect((await drain(late))[0]).toEqual([1, payload(1)]);
    await spool.removeConsumer('late');
    expect(spool.consumers().size).toBe(0);
    await spool.close();
  });

  it('refuses a payload above maxRecordBytes, a second reader per name and bad acks', async () => {
    const spool = await Spool.open({
      dir: await tempDir(),
      maxRecordBytes: 10,
      batchDelayMs: 60_000,
    });
    let err: unknown;
    try {
      spool.append('12345678901');
    } catch (e) {
      err = e;
    }
    expect(isPortcullisError(err, 'PCL_ERR_EVENTS_WRITE')).toBe(true);
    expect(spool.append('1234567890')).toBe(1);
    const reader = await spool.openReader('a');
    await expect(spool.openReader('a')).rejects.toThrow(/already has a reader/);
    await expect(spool.ack('a', 1)).rejects.toThrow(RangeError); // not durable yet
    await expect(spool.ack('nobody', 0)).rejects.toThrow(/unknown/);
    await expect(spool.openReader('bad/name')).rejects.toThrow(RangeError);
    await reader.close();
    await spool.close();
    expect(() => spool.append('x')).toThrow(/closed/);
  });

  it('refuses a directory another open spool holds', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir });
    await expect(Spool.open({ dir })).rejects.toThrow(/already open/);
    await spool.close();
    await (await Spool.open({ dir })).close();
  });

  it('iterates with for await and stops when the loop breaks', async () => {
    const spool = await Spool.open({ dir: await tempDir() });
    for (let i = 1; i <= 5; i++) spool.append(payload(i));
    await spool.flush();
    const seen: number[] = [];
    const reader = await spool.openReader('a', { maxRecords: 2 });
    for await (const batch of reader) {
      seen.push(...batch.records.map((r) => r.sequence));
      await reader.ack(batch.lastSequence);
      if (batch.lastSequence >= 4) break;
    }
    expect(seen).toEqual([1, 2, 3, 4]);
    // The loop closed the reader, so the name is free again.
    const again = await spool.openReader('a');
    expect((await drain(again)).map(([s]) => s)).toEqual([5]);
    await spool.close();
  });

  it('reports metrics: disk bytes, buffered bytes, fsync latency', async () => {
    const spool = await Spool.open({ dir: await tempDir(), batchDelayMs: 1000 });
    expect(spool.diskBytes).toBe(32);
    spool.append(payload(1));
    expect(spool.bufferedBytes).toBe(116);
    await spool.flush();
    expect(spool.bufferedBytes).toBe(0);
    expect(spool.diskBytes).toBe(32 + 116);
    expect(spool.lastFsyncMs).toBeGreaterThan(0);
    expect(spool.droppedEvents).toBe(0);
    expect(spool.corruptedRecords).toBe(0);
    await spool.close();
  });
});
