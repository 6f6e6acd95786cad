import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { Spool, type SpoolCorruptionReport } from './spool.js';
import { payload, removeTempDirs, tempDir } from './spool-test-support.fixture.js';

afterEach(removeTempDirs);

const WRITER = fileURLToPath(new URL('./crash-writer.fixture.ts', import.meta.url));

/**
 * Runs the writer on `dir` until it has reported `flushedAtLeast` durable records, then kills it
 * with SIGKILL while it keeps appending. Returns the highest sequence it reported durable.
 */
async function writeAndKill(dir: string, flushedAtLeast: number): Promise<number> {
  const child = fork(WRITER, [dir], {
    execArgv: ['--conditions=@portcullis/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let flushed = 0;
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  let checkedLock = false;
  await new Promise<void>((resolve, reject) => {
    child.on('message', (m: { flushed?: number }) => {
      if (m.flushed !== undefined) flushed = Math.max(flushed, m.flushed);
      if (!checkedLock) {
        checkedLock = true;
        // While the writer lives, nobody else may open its spool.
        void Spool.open({ dir }).then(
          (s) => reject(new Error(`opened a spool in use: ${String(s)}`)),
          (err: Error) => {
            if (!/in use by process/.test(err.message)) reject(err);
          },
        );
      }
      if (flushed >= flushedAtLeast) {
        child.kill('SIGKILL');
        resolve();
      }
    });
    child.on('exit', (code) => reject(new Error(`writer exited early (${code})`)));
  });
  expect(await exited).toBe('SIGKILL');
  return flushed;
}

/** Reopens the spool and reads everything consumer `sink` has not acknowledged. */
async function recover(dir: string) {
  const reports: SpoolCorruptionReport[] = [];
  const spool = await Spool.open({ dir, onCorruption: (r) => reports.push(r) });
  const reader = await spool.openReader('sink');
  const sequences: number[] = [];
  for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
    for (const r of batch.records) {
      expect(r.payload.toString()).toBe(payload(r.sequence, 80 + (r.sequence % 200)));
      sequences.push(r.sequence);
    }
  }
  return { spool, reader, reports, sequences };
}

const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('Spool after SIGKILL', () => {
  it('delivers every flushed record, in order, and redelivers what was not acknowledged', async () => {
    const dir = await tempDir();

    const flushedA = await writeAndKill(dir, 3000);
    const a = await recover(dir);
    // No record of the clean part is reported corrupt; at most a torn tail goes.
    expect(a.reports.filter((r) => r.kind !== 'torn-tail')).toEqual([]);
    const lastA = a.sequences[a.sequences.length - 1]!;
    expect(lastA).toBeGreaterThanOrEqual(flushedA);
    expect(a.sequences).toEqual(range(1, lastA));
    const acked = Math.floor(flushedA / 2);
    await a.reader.ack(acked);
    await a.spool.close();

    const flushedB = await writeAndKill(dir, lastA + 3000);
    const b = await recover(dir);
    expect(b.reports.filter((r) => r.kind !== 'torn-tail')).toEqual([]);
    const lastB = b.sequences[b.sequences.length - 1]!;
    expect(lastB).toBeGreaterThanOrEqual(flushedB);
    // At least once: everything after the acknowledged position comes again, then the new run.
    expect(b.sequences).toEqual(range(acked + 1, lastB));
    await b.spool.close();
  }, 60_000);
});
