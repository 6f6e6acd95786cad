import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';

/** One record a sink gave up on, as a line of the dead-letter file. */
export interface DeadLetterEntry {
  /** When the record was given up on (ISO 8601). */
  readonly at: string;
  /** The sink (spool consumer) that gave up. */
  readonly sink: string;
  /** Where it was going, e.g. the ClickHouse table. */
  readonly target: string;
  /** The record's spool sequence number. */
  readonly sequence: number;
  /** Why: a machine-readable reason and the message of whoever refused it. */
  readonly error: {
    readonly reason: 'undecodable' | 'rejected';
    /** The ClickHouse error code when the server refused it. */
    readonly code: number | null;
    readonly message: string;
  };
  /** The record's payload as UTF-8 text (the event JSON). */
  readonly payload: string;
}

/**
 * An append-only JSONL file of records a sink could not store (`<dir>/<sink>.dead-letter.jsonl`).
 * {@link append} returns once the lines are on disk (fdatasync), so a sink can acknowledge the
 * records to the spool right after: a dead-lettered record leaves the spool only once it is here.
 * Lines of one append are written with one write call; a crash between two appends can leave a
 * record in the file and still in the spool, so a line may appear twice after a crash.
 */
export class DeadLetterFile {
  readonly path: string;
  readonly #dir: string;
  #madeDir = false;
  /** Appends run one at a time, so concurrent deliveries never interleave their lines. */
  #appending: Promise<void> = Promise.resolve();

  constructor(dir: string, sinkName: string) {
    if (!/^[A-Za-z0-9._-]+$/.test(sinkName)) {
      throw new RangeError(`sink name ${JSON.stringify(sinkName)} cannot name a dead-letter file`);
    }
    this.#dir = dir;
    this.path = join(dir, `${sinkName}.dead-letter.jsonl`);
  }

  /** Appends `entries` as JSON lines and syncs the file. A no-op for an empty list. */
  append(entries: readonly DeadLetterEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const next = this.#appending.then(() => this.#write(entries));
    this.#appending = next.catch(() => undefined);
    return next;
  }

  async #write(entries: readonly DeadLetterEntry[]): Promise<void> {
    if (!this.#madeDir) {
      await mkdir(this.#dir, { recursive: true });
      this.#madeDir = true;
    }
    const text = entries.map((entry) => `${JSON.stringify(entry)}\n`).join('');
    const handle = await open(this.path, 'a', 0o600);
    try {
      await handle.write(text);
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }
}
