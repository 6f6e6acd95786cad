import { silentLogger, type Logger } from '@portcullis/core';
import type { BatchSink, ChdbEventStore, SpoolRecord } from '@portcullis/events';
import { storeOf } from './store-sink.js';

/** A batch of spooled events a worker hands to the primary's sink `sink`. */
export interface DeliverEventsMessage {
  readonly type: 'portcullis:events';
  readonly id: number;
  readonly sink: string;
  /** The records' payloads, each followed by a newline (event JSON never holds a raw newline). */
  readonly lines: Uint8Array;
  readonly count: number;
}

/** The primary's answer: stored (error null) or not. */
export interface EventsDeliveredMessage {
  readonly type: 'portcullis:events-done';
  readonly id: number;
  readonly error: string | null;
}

interface Pending {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * A cluster worker's side of the event sinks the primary runs. The worker keeps its own spool
 * (so its events are durable before anything crosses a process boundary) and a SinkRunner per
 * sink; each runner delivers through {@link sink}, which sends the batch to the primary and
 * resolves once the primary stored it. Only then is the worker's spool acknowledged, so a batch
 * lost with a crashed primary or worker is delivered again.
 */
export class ClusterSinkClient {
  readonly #send: (message: DeliverEventsMessage) => boolean;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(send: (message: DeliverEventsMessage) => boolean) {
    this.#send = send;
  }

  /** A BatchSink that forwards to the primary's sink of this name. */
  sink(name: string): BatchSink {
    return {
      name,
      deliver: (records) => this.#deliver(name, records),
      close: () => Promise.resolve(),
    };
  }

  /** Settles a delivery with the primary's answer. */
  settle(message: EventsDeliveredMessage): void {
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.error === null) pending.resolve();
    else pending.reject(new Error(`the primary could not store events: ${message.error}`));
  }

  /** Fails every delivery in flight (the channel to the primary closed). */
  failAll(reason: string): void {
    for (const pending of this.#pending.values()) pending.reject(new Error(reason));
    this.#pending.clear();
  }

  #deliver(name: string, records: readonly SpoolRecord[]): Promise<void> {
    let bytes = 0;
    for (const r of records) bytes += r.payload.length + 1;
    const lines = Buffer.allocUnsafe(bytes);
    let at = 0;
    for (const r of records) {
      at += r.payload.copy(lines, at);
      lines[at++] = 0x0a;
    }
    const id = this.#nextId++;
    return new Promise<void>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      let sent: boolean;
      try {
        sent = this.#send({
          type: 'portcullis:events',
          id,
          sink: name,
          lines,
          count: records.length,
        });
      } catch {
        sent = false;
      }
      if (!sent) {
        this.#pending.delete(id);
        reject(new Error('the channel to the gateway primary is closed'));
      }
    });
  }
}

/**
 * The primary's side: runs the sinks (the file and the embedded store, one writer each for the
 * whole gateway) and stores each worker's batches in them.
 */
export class ClusterSinkHost {
  readonly #sinks: ReadonlyMap<string, BatchSink>;
  readonly #logger: Logger;
  #closed = false;

  constructor(sinks: readonly BatchSink[], logger: Logger = silentLogger) {
    this.#sinks = new Map(sinks.map((s) => [s.name, s]));
    this.#logger = logger;
  }

  /** The embedded store the primary's store sink writes to (the HTTP API reads it), or null. */
  get store(): ChdbEventStore | null {
    return storeOf(this.#sinks.values());
  }

  /** Stores one worker batch and answers through `reply`. */
  async handle(
    message: DeliverEventsMessage,
    reply: (answer: EventsDeliveredMessage) => void,
  ): Promise<void> {
    let error: string | null = null;
    try {
      const sink = this.#sinks.get(message.sink);
      if (this.#closed) throw new Error('the primary is shutting down');
      if (sink === undefined) throw new Error(`no event sink named ${message.sink} in the primary`);
      await sink.deliver(splitLines(message.lines));
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      this.#logger.warn({ err, sink: message.sink }, 'storing a worker’s events failed');
    }
    try {
      reply({ type: 'portcullis:events-done', id: message.id, error });
    } catch {
      // The worker is gone; its spool delivers the batch again after its restart.
    }
  }

  /** Closes every sink (after the workers have stopped). */
  async close(): Promise<void> {
    this.#closed = true;
    for (const sink of this.#sinks.values()) {
      await sink
        .close()
        .catch((err: unknown) =>
          this.#logger.warn({ err, sink: sink.name }, 'closing an event sink failed'),
        );
    }
  }
}

/** Newline-terminated payloads back into records (sequence numbers do not cross processes). */
function splitLines(lines: Uint8Array): SpoolRecord[] {
  const buf = Buffer.from(lines.buffer, lines.byteOffset, lines.byteLength);
  const records: SpoolRecord[] = [];
  let start = 0;
  for (;;) {
    const end = buf.indexOf(0x0a, start);
    if (end < 0) break;
    records.push({ sequence: 0, payload: buf.subarray(start, end) });
    start = end + 1;
  }
  return records;
}
