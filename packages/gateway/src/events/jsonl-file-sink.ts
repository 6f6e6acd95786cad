import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BatchSink, SpoolRecord } from '@portcullis/events';

/** Options of {@link JsonlFileSink}. */
export interface JsonlFileSinkOptions {
  readonly path: string;
  /** The file is rotated once it reaches this size. */
  readonly maxBytes: number;
  /** Rotated files kept (`path.1` the newest); 0 keeps none. */
  readonly keep: number;
  /** The spool consumer's name (default `file`). */
  readonly name?: string;
}

/**
 * The JSONL file sink: each spooled event (already one line of JSON) is appended to a file, a
 * batch per write, made durable (fdatasync) before the spool is told. When the file passes
 * `maxBytes` it is renamed to `path.1` (older ones move up, the oldest past `keep` is deleted)
 * and a new file starts. Delivery is at least once: after a crash a batch may be written again,
 * so a reader that needs exactness drops repeated event ids.
 *
 * One writer per file: in multi-process mode the primary owns it. Deliveries are serialised, so
 * several producers may share one sink.
 */
export class JsonlFileSink implements BatchSink {
  readonly name: string;
  readonly #path: string;
  readonly #maxBytes: number;
  readonly #keep: number;
  #file: FileHandle | null = null;
  #size = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(options: JsonlFileSinkOptions) {
    this.name = options.name ?? 'file';
    this.#path = options.path;
    this.#maxBytes = options.maxBytes;
    this.#keep = options.keep;
  }

  /** Appends the records' payloads as lines and syncs; rotates past maxBytes. */
  deliver(records: readonly SpoolRecord[]): Promise<void> {
    return this.#serial(async () => {
      if (records.length === 0) return;
      let bytes = 0;
      for (const r of records) bytes += r.payload.length + 1;
      const body = Buffer.allocUnsafe(bytes);
      let at = 0;
      for (const r of records) {
        at += r.payload.copy(body, at);
        body[at++] = 0x0a;
      }
      const file = await this.#open();
      let written = 0;
      while (written < body.length) {
        const { bytesWritten } = await file.write(body, written, body.length - written);
        written += bytesWritten;
      }
      await file.datasync();
      this.#size += body.length;
      if (this.#size >= this.#maxBytes) await this.#rotate();
    });
  }

  async close(): Promise<void> {
    await this.#serial(async () => {
      this.#closed = true;
      await this.#file?.close();
      this.#file = null;
    });
  }

  async #open(): Promise<FileHandle> {
    if (this.#closed) throw new Error('the event file sink is closed');
    if (this.#file !== null) return this.#file;
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    const file = await open(this.#path, 'a', 0o600);
    this.#size = (await file.stat()).size;
    this.#file = file;
    return file;
  }

  async #rotate(): Promise<void> {
    await this.#file?.close();
    this.#file = null;
    this.#size = 0;
    if (this.#keep === 0) {
      await rm(this.#path, { force: true });
      return;
    }
    await rm(`${this.#path}.${this.#keep}`, { force: true });
    for (let n = this.#keep - 1; n >= 1; n--) {
      await rename(`${this.#path}.${n}`, `${this.#path}.${n + 1}`).catch((err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      });
    }
    await rename(this.#path, `${this.#path}.1`);
  }

  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
