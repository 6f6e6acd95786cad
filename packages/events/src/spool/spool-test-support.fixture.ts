// Shared by the spool tests: temp directories and a reader that drains what is durable.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SpoolReader } from './spool-reader.js';

const made: string[] = [];

/** A fresh directory under the OS temp dir; removed by {@link removeTempDirs}. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pcl-spool-'));
  made.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await rm(dir, { recursive: true, force: true });
}

/** Every durable record the reader has now, as [sequence, text] pairs, without acknowledging. */
export async function drain(reader: SpoolReader): Promise<[number, string][]> {
  const out: [number, string][] = [];
  for (let batch = await reader.poll(); batch !== null; batch = await reader.poll()) {
    for (const r of batch.records) out.push([r.sequence, r.payload.toString('utf8')]);
  }
  return out;
}

/** A payload that names its index and has some bulk. */
export function payload(i: number, size = 100): string {
  const head = `{"n":${i},"pad":"`;
  return head + 'x'.repeat(Math.max(0, size - head.length - 2)) + '"}';
}
