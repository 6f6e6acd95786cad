import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPortcullisError } from '@portcullis/core';
import { Spool } from './spool.js';
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
