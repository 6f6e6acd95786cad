import { silentLogger, type Logger, type SessionEvent } from '@portcullis/core';
import type { BatchSink, ChdbEventStore, SpoolRecord } from '@portcullis/events';

/**
 * Feeds spooled events into the embedded store. The store skips ids it already holds, so a
 * batch delivered again after a crash or a failed acknowledgement is stored once. A record that
 * is not an event's JSON (it cannot be, unless the spool's checksum missed damage) is logged and
 * skipped rather than blocking every event behind it.
 */
export class StoreSink implements BatchSink {
  readonly name: string;
  readonly #store: ChdbEventStore;
  readonly #logger: Logger;
  #skipped = 0;

  constructor(store: ChdbEventStore, options: { name?: string; logger?: Logger } = {}) {
    this.name = options.name ?? 'store';
    this.#store = store;
    this.#logger = options.logger ?? silentLogger;
  }

  /** The store this sink writes to; the HTTP API's event routes query it (one chDB per store). */
  get store(): ChdbEventStore {
    return this.#store;
  }

  /** Records skipped because they did not parse as events. */
  get skipped(): number {
    return this.#skipped;
  }

  async deliver(records: readonly SpoolRecord[]): Promise<void> {
    const events: SessionEvent[] = [];
    for (const record of records) {
      try {
        events.push(JSON.parse(record.payload.toString('utf8')) as SessionEvent);
      } catch (err) {
        this.#skipped++;
        this.#logger.error(
          { err, sequence: record.sequence, bytes: record.payload.length },
          'event store sink: a spooled record is not an event; skipped',
        );
      }
    }
    if (events.length > 0) await this.#store.insert(events);
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}

/** The embedded store a store sink among `sinks` writes to, or null when none does. */
export function storeOf(sinks: Iterable<BatchSink>): ChdbEventStore | null {
  for (const sink of sinks) if (sink instanceof StoreSink) return sink.store;
  return null;
}
