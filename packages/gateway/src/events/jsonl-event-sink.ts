import { mkdirSync, openSync, closeSync, write } from 'node:fs';
import { dirname } from 'node:path';
import { promisify } from 'node:util';
import {
  PortcullisError,
  silentLogger,
  type EventSink,
  type Logger,
  type SessionEvent,
} from '@portcullis/core';
import { encodeEventJson } from './encode-event-json.js';

const writeAsync = promisify(write);

/** Options of {@link JsonlEventSink}. */
export interface JsonlEventSinkOptions {
  readonly path: string;
  /** Longest an event waits in memory before it is written. */
  readonly flushIntervalMs: number;
  /** Pending bytes that trigger a write at once. */
  readonly flushBytes?: number;
  readonly logger?: Logger;
}

/**
 * Appends events to a JSON Lines file, one object per line, in batches. The file is opened with
 * O_APPEND and each batch is written with one call, so several gateway processes can share the
 * file without interleaving lines, and each session's events (written by one process) stay in
 * order. A failed write keeps the batch and tries again on the next flush.
 */
export class JsonlEventSink implements EventSink {
  readonly #fd: number;
  readonly #flushIntervalMs: number;
  readonly #flushBytes: number;
  readonly #logger: Logger;
  #pending: string[] = [];
  #pendingBytes = 0;
  #timer: NodeJS.Timeout | null = null;
  #writing: Promise<void> | null = null;
  #closed = false;

  constructor(options: JsonlEventSinkOptions) {
    this.#flushIntervalMs = options.flushIntervalMs;
    this.#flushBytes = options.flushBytes ?? 256 * 1024;
    this.#logger = options.logger ?? silentLogger;
    try {
      mkdirSync(dirname(options.path), { recursive: true, mode: 0o700 });
      this.#fd = openSync(options.path, 'a', 0o600);
    } catch (err) {
      throw new PortcullisError(
        'PCL_ERR_EVENTS_WRITE',
        `cannot open event file ${options.path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Queues one event; it reaches the file within the flush interval. */
  write(event: SessionEvent): void {
    if (this.#closed) throw new PortcullisError('PCL_ERR_EVENTS_WRITE', 'event sink is closed');
    const line = `${encodeEventJson(event)}\n`;
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#pendingBytes >= this.#flushBytes) {
      void this.flush().catch(() => {});
    } else if (this.#timer === null) {
      this.#timer = setTimeout(() => void this.flush().catch(() => {}), this.#flushIntervalMs);
      this.#timer.unref();
    }
  }

  /** Writes everything queued so far. */
  async flush(): Promise<void> {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    while (this.#writing !== null) await this.#writing;
    if (this.#pending.length === 0) return;
    const batch = this.#pending;
    this.#pending = [];
    this.#pendingBytes = 0;
    const data = Buffer.from(batch.join(''), 'utf8');
    this.#writing = this.#writeAll(data).then(
      () => {
        this.#writing = null;
      },
      (err: unknown) => {
        this.#writing = null;
        // Keep the batch for the next attempt rather than lose it.
        this.#pending = batch.concat(this.#pending);
        this.#pendingBytes += data.length;
        this.#logger.error({ err }, 'event sink write failed; will retry');
        throw new PortcullisError(
          'PCL_ERR_EVENTS_WRITE',
          `writing events failed: ${(err as Error).message}`,
          {
            cause: err,
          },
        );
      },
    );
    await this.#writing;
  }

  /** Flushes and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
    closeSync(this.#fd);
  }

  async #writeAll(data: Buffer): Promise<void> {
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await writeAsync(this.#fd, data, offset, data.length - offset);
      offset += bytesWritten;
    }
  }
}
