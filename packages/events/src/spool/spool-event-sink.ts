import type { EventSink, SessionEvent } from '@portcullis/core';
import type { Spool } from './spool.js';

/** Options of {@link SpoolEventSink}. */
export interface SpoolEventSinkOptions {
  /**
   * Turns an event into the line stored in the spool (no trailing newline). Defaults to
   * `JSON.stringify`; the gateway passes its own encoder.
   */
  readonly encode?: (event: SessionEvent) => string;
  /** Whether {@link SpoolEventSink.close} closes the spool too (default true). */
  readonly closeSpool?: boolean;
}

/**
 * The gateway's event sink in front of the spool: `write` appends the encoded event (memory only,
 * never blocks the data path), `flush` resolves once it is durable. When the spool is full under
 * `fail-closed`, `write` throws `PCL_ERR_SPOOL_FULL`, so the caller can refuse the statement or
 * session it was about to run unrecorded.
 */
export class SpoolEventSink implements EventSink {
  readonly #spool: Spool;
  readonly #encode: (event: SessionEvent) => string;
  readonly #closeSpool: boolean;

  constructor(spool: Spool, options: SpoolEventSinkOptions = {}) {
    this.#spool = spool;
    this.#encode = options.encode ?? ((event) => JSON.stringify(event));
    this.#closeSpool = options.closeSpool ?? true;
  }

  /** Appends one event; returns nothing, throws `PCL_ERR_SPOOL_FULL` under `fail-closed`. */
  write(event: SessionEvent): void {
    this.#spool.append(this.#encode(event));
  }

  /** Resolves once every event written so far is durable in the spool. */
  flush(): Promise<void> {
    return this.#spool.flush();
  }

  /** Flushes, then closes the spool unless `closeSpool` was false. */
  async close(): Promise<void> {
    if (this.#closeSpool) await this.#spool.close();
    else await this.#spool.flush();
  }
}
