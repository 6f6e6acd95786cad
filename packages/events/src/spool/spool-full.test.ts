import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPortcullisError, type Logger, type SessionEvent } from '@portcullis/core';
import { segmentFileName } from './segment-format.js';
import { Spool, type SpoolCorruptionReport, type SpoolWritev } from './spool.js';
import { SpoolEventSink } from './spool-event-sink.js';
import { drain, payload, removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('did not throw');
}

function recordingLogger() {
  const warnings: { obj: object; msg: string }[] = [];
  const errors: { obj: object; msg: string }[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn: (obj, msg) => warnings.push({ obj, msg: msg ?? '' }),
    error: (obj, msg) => errors.push({ obj, msg: msg ?? '' }),
  };
  return { logger, warnings, errors };
}

/** A writev that, while `failing` is set, writes part of the batch and then fails like the OS. */
function faultyWritev(code: string) {
  const state = { failing: false, calls: 0 };
  const writev: SpoolWritev = async (file, buffers, position) => {
    state.calls++;
    if (!state.failing) return file.writev(buffers, position);
    const part = buffers[0]!.subarray(0, Math.ceil(buffers[0]!.length / 2));
    await file.write(part, 0, part.length, position);
    throw Object.assign(new Error(`${code}: simulated`), { code });
  };
  return { state, writev };
}

const SIZES = { maxBytes: 4096, segmentBytes: 1024 } as const; // 116-byte records

describe('Spool when full', () => {
  it('fail-closed: refuses appends with PCL_ERR_SPOOL_FULL at maxBytes, accepts again after acks', async () => {
    const dir = await tempDir();
    const spool = await Spool.open({ dir, ...SIZES });
    const reader = await spool.openReader('sink');
    let accepted = 0;
    let err: unknown;
    for (;;) {
      try {
        spool.append(payload(accepted + 1));
        accepted++;
      } catch (e) {
        err = e;
        break;
      }
    }
    expect(isPortcullisError(err, 'PCL_ERR_SPOOL_FULL')).toBe(true);
    expect((err as Error).message).toMatch(/event spool is full/);
    expect(accepted).toBeGreaterThan(25);
    await spool.flush();
    expect(spool.diskBytes).toBeLessThanOrEqual(SIZES.maxBytes);
    let used = 0;
    for (let s = 1; ; s++) {
      const size = await stat(join(dir, segmentFileName(s))).then(
        (st) => st.size,
        () => 0,
      );
      used += size;
      if (s > accepted) break;
    }
    expect(used).toBe(spool.diskBytes);
    // The sink sees everything accepted; nothing was dropped.
    const got = await drain(reader);
    expect(got.map(([s]) => s)).toEqual(Array.from({ length: accepted }, (_, i) => i + 1));
    expect(spool.droppedEvents).toBe(0);
    // Still full until the sink acknowledges; then the oldest segments go and appends work.
    expect(
      isPortcullisError(
        thrown(() => spool.append(payload(0))),
        'PCL_ERR_SPOOL_FULL',
      ),
    ).toBe(true);
    await reader.ack(accepted);
    expect(spool.append(payload(0))).toBe(accepted + 1);
    await spool.close();
  });

  it('fail-closed through SpoolEventSink: write throws, so the gateway can refuse the statement', async () => {
    const spool = await Spool.open({ dir: await tempDir(), ...SIZES });
    const sink = new SpoolEventSink(spool, { encode: () => payload(0) });
    const event = {} as SessionEvent;
    let err: unknown;
    for (let i = 0; i < 100 && err === undefined; i++) {
      try {
        sink.write(event);
      } catch (e) {
        err = e;
      }
    }
    expect(isPortcullisError(err, 'PCL_ERR_SPOOL_FULL')).toBe(true);
    await sink.close();
  });

  it('fail-open: drops and counts events at maxBytes, warns once per interval', async () => {
    const { logger, warnings } = recordingLogger();
    const spool = await Spool.open({
      dir: await tempDir(),
      ...SIZES,
      whenFull: 'fail-open',
      logger,
    });
    const reader = await spool.openReader('sink');
    const results: number[] = [];
    for (let i = 1; i <= 60; i++) results.push(spool.append(payload(i)));
    const accepted = results.filter((s) => s > 0).length;
    expect(results.slice(0, accepted)).toEqual(Array.from({ length: accepted }, (_, i) => i + 1));
    expect(results.slice(accepted).every((s) => s === 0)).toBe(true);
    expect(spool.droppedEvents).toBe(60 - accepted);
    expect(warnings.length).toBe(1);
    expect(warnings[0]!.msg).toMatch(/dropping events \(fail-open\)/);
    await spool.flush();
    expect((await drain(reader)).length).toBe(accepted);
    await reader.ack(accepted);
    // Dropped events used no sequence numbers.
    expect(spool.append('after')).toBe(accepted + 1);
    await spool.close();
  });

  it('fail-open warns again after the interval, with the count since the last warning', async () => {
    const { logger, warnings } = recordingLogger();
    const spool = await Spool.open({
      dir: await tempDir(),
      ...SIZES,
      whenFull: 'fail-open',
      dropWarningIntervalMs: 30,
      logger,
    });
    for (let i = 1; i <= 50; i++) spool.append(payload(i));
    const firstDrops = spool.droppedEvents;
    await new Promise((r) => setTimeout(r, 40));
    spool.append(payload(0));
    spool.append(payload(0));
    expect(warnings.length).toBe(2);
    expect(warnings[0]!.obj).toMatchObject({ dropped: 1 });
    expect(warnings[1]!.obj).toMatchObject({ dropped: firstDrops, total: firstDrops + 1 });
    await spool.close();
  });

  it('a full disk (ENOSPC) under fail-closed: flush and append raise PCL_ERR_SPOOL_FULL, nothing durable is lost, writes resume', async () => {
    const dir = await tempDir();
    const { state, writev } = faultyWritev('ENOSPC');
    const { logger, errors } = recordingLogger();
    const spool = await Spool.open({ dir, writev, retryDelayMs: 60_000, logger });
    for (let i = 1; i <= 5; i++) spool.append(payload(i));
    await spool.flush();
    const durableSize = (await stat(join(dir, segmentFileName(1)))).size;

    state.failing = true;
    for (let i = 6; i <= 10; i++) spool.append(payload(i));
    const err = await spool.flush().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err, 'PCL_ERR_SPOOL_FULL')).toBe(true);
    expect((err as Error).message).toMatch(/disk full \(ENOSPC\)/);
    expect(spool.failing).toBe(true);
    expect(errors.length).toBe(1);
    expect(
      isPortcullisError(
        thrown(() => spool.append('x')),
        'PCL_ERR_SPOOL_FULL',
      ),
    ).toBe(true);
    // The half-written batch was cut off; readers see only the durable records.
    expect((await stat(join(dir, segmentFileName(1)))).size).toBe(durableSize);
    const reader = await spool.openReader('sink');
    expect((await drain(reader)).map(([s]) => s)).toEqual([1, 2, 3, 4, 5]);

    state.failing = false;
    await spool.flush(); // a flush tries again at once
    expect(spool.failing).toBe(false);
    expect((await drain(reader)).map(([s]) => s)).toEqual([6, 7, 8, 9, 10]);
    expect(spool.append(payload(11))).toBe(11);
    await spool.close();

    const reports: SpoolCorruptionReport[] = [];
    const again = await Spool.open({ dir, onCorruption: (r) => reports.push(r) });
    const all = await drain(await again.openReader('sink'));
    expect(all).toEqual(Array.from({ length: 11 }, (_, i) => [i + 1, payload(i + 1)]));
    expect(reports).toEqual([]);
    await again.close();
  });

  it('retries a failed write on its own after retryDelayMs', async () => {
    const { state, writev } = faultyWritev('ENOSPC');
    const spool = await Spool.open({ dir: await tempDir(), writev, retryDelayMs: 20 });
    state.failing = true;
    spool.append('a');
    await expect(spool.flush()).rejects.toThrow(/disk full/);
    state.failing = false;
    const reader = await spool.openReader('sink');
    const batch = await reader.read(); // woken by the retry, no flush
    expect(batch?.records.map((r) => r.payload.toString())).toEqual(['a']);
    await spool.close();
  });

  it('a full disk under fail-open drops new events while writes fail, keeps the buffered ones', async () => {
    const { state, writev } = faultyWritev('ENOSPC');
    const spool = await Spool.open({
      dir: await tempDir(),
      writev,
      whenFull: 'fail-open',
      retryDelayMs: 60_000,
    });
    state.failing = true;
    spool.append('kept');
    await expect(spool.flush()).rejects.toThrow(/disk full/);
    expect(spool.append('dropped')).toBe(0);
    expect(spool.droppedEvents).toBe(1);
    state.failing = false;
    await spool.flush();
    expect(spool.append('next')).toBe(2);
    await spool.flush();
    const reader = await spool.openReader('sink');
    expect(await drain(reader)).toEqual([
      [1, 'kept'],
      [2, 'next'],
    ]);
    await spool.close();
  });

  it('other write faults raise PCL_ERR_EVENTS_WRITE', async () => {
    const { state, writev } = faultyWritev('EIO');
    const spool = await Spool.open({ dir: await tempDir(), writev, retryDelayMs: 60_000 });
    state.failing = true;
    spool.append('a');
    const err = await spool.flush().then(
      () => null,
      (e: unknown) => e,
    );
    expect(isPortcullisError(err, 'PCL_ERR_EVENTS_WRITE')).toBe(true);
    expect(
      isPortcullisError(
        thrown(() => spool.append('b')),
        'PCL_ERR_EVENTS_WRITE',
      ),
    ).toBe(true);
    state.failing = false;
    await spool.close(); // close retries and makes 'a' durable
  });
});
