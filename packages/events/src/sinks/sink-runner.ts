import { silentLogger, type Logger } from '@portcullis/core';
import type { Spool } from '../spool/spool.js';
import type { SpoolBatch, SpoolReader, SpoolRecord } from '../spool/spool-reader.js';

/**
 * Where spooled events go: ClickHouse, Kafka, a file. `deliver` gets each batch in sequence
 * order and resolves once the batch is durably stored there; it may be called again with
 * records it already stored (after a crash, or a retry after a failure that happened after
 * storing), so it must be idempotent by event id.
 */
export interface BatchSink {
  /** The spool consumer this sink reads as (its position survives restarts). */
  readonly name: string;
  deliver(records: readonly SpoolRecord[]): Promise<void>;
  close(): Promise<void>;
  /**
   * True when nothing of the sink reads a delivery's records once its `deliver` settles (what
   * it keeps, it copied): the runner then has the spool reuse the memory they were read into.
   */
  readonly keepsNoRecords?: boolean;
}

/** Options of a {@link SinkRunner}. */
export interface SinkRunnerOptions {
  readonly logger?: Logger;
  /** First retry delay after a failed delivery; doubles up to `maxRetryDelayMs`. */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  /** Records per delivery (default 4096). */
  readonly maxRecords?: number;
  /**
   * Bytes read from the spool at a time, and so the most payload in one delivery (default 1 MiB;
   * with `lingerMs`, a delivery joins reads up to `maxRecords`).
   * Sinks with a high fixed cost per request (a ClickHouse insert) want more.
   */
  readonly readBytes?: number;
  /**
   * Least time between acknowledgements (default 200 ms). Each one rewrites the consumer's
   * offsets durably (two fsyncs), so acknowledging every small batch under load costs more than
   * the delivery; batches delivered in between are acknowledged together, and after a crash up
   * to this much is delivered again (at least once either way).
   */
  readonly ackIntervalMs?: number;
  /**
   * Least time from one delivery to the next while batches come in smaller than `maxRecords`
   * (default 0: deliver at once). The records that arrive meanwhile join the batch; a full
   * batch, a backlog and a stopping runner do not wait.
   */
  readonly lingerMs?: number;
  /**
   * End deliveries where the record sequence reaches a multiple of `maxRecords` (default false),
   * so a sink that cuts its writes at those multiples (ClickHouseSink's inserts) gets whole ones
   * instead of a large and a small write per delivery. After a start mid-way the first delivery
   * is shorter.
   */
  readonly alignBatches?: boolean;
  /**
   * Deliveries that may be in progress at once (default 1). With more, the next batch goes to
   * the sink while the last one is still being stored, for sinks whose `deliver` may run
   * concurrently and whose writes need no order (ClickHouse inserts); acknowledgements still
   * follow the spool's order, so nothing is acknowledged before everything before it is stored.
   */
  readonly maxInFlight?: number;
}

/**
 * Batches for sinks that pay a fixed cost per delivery (a ClickHouse insert makes a new data
 * part, and parts are merged later): up to 50,000 records read 8 MiB at a time, ending at
 * multiples of 50,000 (ClickHouseSink's insert boundaries), and under a steady trickle at most
 * one delivery a second, so a busy gateway makes a few large inserts instead of one small one
 * per spool flush. The gateway runs its store and ClickHouse sinks with
 * these; the benchmark measures them the same way.
 */
export const BULK_BATCHES = {
  maxRecords: 50_000,
  readBytes: 8 * 1024 * 1024,
  lingerMs: 1_000,
  alignBatches: true,
} as const;

/**
 * {@link BULK_BATCHES} with two deliveries in flight: the gateway's ClickHouse sink encodes and
 * sends the next insert while the server still finishes the last one. (The embedded store's
 * hash chains need its deliveries one at a time.)
 */
export const CLICKHOUSE_BATCHES = { ...BULK_BATCHES, maxInFlight: 2 } as const;

/**
 * Batches for sinks that stream (Kafka): up to 20,000 records read 8 MiB at a time, with no
 * lingering, so an event leaves as soon as it is durable. A backlog drains in reads of 8 MiB
 * instead of 1 MiB, which costs less per record; the benchmark measures the Kafka sink with these.
 */
export const STREAM_BATCHES = {
  maxRecords: 20_000,
  readBytes: 8 * 1024 * 1024,
} as const;

/** What a runner has done, for metrics and `portcullis` status output. */
export interface SinkRunnerStats {
  readonly delivered: number;
  readonly batches: number;
  readonly failures: number;
  /** The last failure's message; null after a success. */
  readonly lastError: string | null;
  /** Records in the spool this sink has not acknowledged. */
  readonly lagRecords: number;
}

/** A delivery the runner has handed to its sink. */
interface InFlight {
  readonly lastSequence: number;
  /** True once stored, false when given up (stopping); null while in progress. */
  stored: boolean | null;
  /** Settles when the delivery is stored or given up. */
  done: Promise<void>;
}

/**
 * Drains a spool into one sink: reads batches as the sink's consumer, delivers them, and
 * acknowledges only after the sink stored them. A failing sink is retried with exponential
 * backoff, forever: events wait on disk (the spool's size bound and full policy decide what
 * happens when the wait is long), never dropped here. Delivery is at least once.
 */
export class SinkRunner {
  readonly #spool: Spool;
  readonly #sink: BatchSink;
  readonly #logger: Logger;
  readonly #retryDelayMs: number;
  readonly #maxRetryDelayMs: number;
  readonly #maxRecords: number;
  readonly #readBytes: number | undefined;
  readonly #ackIntervalMs: number;
  readonly #lingerMs: number;
  readonly #alignBatches: boolean;
  readonly #maxInFlight: number;
  /** Highest sequence stored by the sink and not yet acknowledged. */
  #pendingAck: number | null = null;
  #lastAckAt = 0;
  #ackTimer: NodeJS.Timeout | null = null;
  /** Acknowledgements run one at a time, in order. */
  #acks: Promise<void> = Promise.resolve();
  #reader: SpoolReader | null = null;
  #running: Promise<void> | null = null;
  #stopping = false;
  /** Wakes the sleeps in progress (a retry's and a linger's may overlap). */
  readonly #wakers = new Set<() => void>();
  #delivered = 0;
  #batches = 0;
  #failures = 0;
  #lastError: string | null = null;

  constructor(spool: Spool, sink: BatchSink, options: SinkRunnerOptions = {}) {
    this.#spool = spool;
    this.#sink = sink;
    this.#logger = options.logger ?? silentLogger;
    this.#retryDelayMs = options.retryDelayMs ?? 100;
    this.#maxRetryDelayMs = options.maxRetryDelayMs ?? 30_000;
    this.#maxRecords = options.maxRecords ?? 4096;
    this.#readBytes = options.readBytes;
    this.#ackIntervalMs = options.ackIntervalMs ?? 200;
    this.#lingerMs = options.lingerMs ?? 0;
    this.#alignBatches = options.alignBatches ?? false;
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? 1);
  }

  get stats(): SinkRunnerStats {
    return {
      delivered: this.#delivered,
      batches: this.#batches,
      failures: this.#failures,
      lastError: this.#lastError,
      lagRecords: this.#spool.lag(this.#sink.name).records,
    };
  }

  /** Starts draining; resolves once the consumer is open. */
  async start(): Promise<void> {
    if (this.#running !== null) return;
    this.#reader = await this.#spool.openReader(this.#sink.name, {
      maxRecords: this.#maxRecords,
      ...(this.#readBytes === undefined ? {} : { readBytes: this.#readBytes }),
      recycleReads: this.#sink.keepsNoRecords === true,
    });
    this.#running = this.#loop(this.#reader);
  }

  /** Stops after the delivery in flight (if any), closes the consumer and the sink. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#wakers) wake();
    await this.#reader?.close();
    await this.#running;
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    // What the sink stored since the last acknowledgement must not be delivered again needlessly.
    await this.#ack().catch((err: unknown) =>
      this.#logger.warn({ err, sink: this.#sink.name }, 'acknowledging the spool failed'),
    );
    await this.#running;
    await this.#sink.close();
  }

  async #loop(reader: SpoolReader): Promise<void> {
    const inFlight: InFlight[] = [];
    // Acknowledges the stored deliveries at the head of the queue, in order, as they finish.
    const advance = (): void => {
      while (inFlight[0]?.stored === true) {
        this.#pendingAck = inFlight.shift()!.lastSequence;
        this.#ackSoon();
      }
    };
    try {
      let next = this.#nextBatch(reader, 0);
      for (;;) {
        const batch = await next;
        if (batch === null || this.#stopping) return;
        // The next batch is read (and gathered) while this one is delivered, so the sink never
        // waits for the spool. Its records are delivered only after this batch, so
        // acknowledgements stay in order; a failure there is thrown where it is awaited (the
        // catch only stops an unhandled-rejection report meanwhile).
        next = this.#nextBatch(reader, Date.now());
        next.catch(() => undefined);
        const delivery: InFlight = {
          lastSequence: batch.lastSequence,
          stored: null,
          done: Promise.resolve(),
        };
        delivery.done = this.#deliver(batch).then((stored) => {
          // Stored or given up, the records are read no more.
          reader.release(batch.records);
          delivery.stored = stored;
          advance();
        });
        inFlight.push(delivery);
        while (inFlight.length >= this.#maxInFlight) {
          await inFlight[0]!.done;
          // Stopping: a later delivery may have stored its records, but acknowledging them
          // would skip this batch's; they are delivered again after a restart.
          if (inFlight[0]?.stored === false) return;
        }
      }
    } finally {
      await Promise.all(inFlight.map((delivery) => delivery.done));
    }
  }

  /** Delivers `batch`, retrying with backoff until it is stored (true) or the runner stops. */
  async #deliver(batch: SpoolBatch): Promise<boolean> {
    let delay = this.#retryDelayMs;
    for (;;) {
      try {
        await this.#sink.deliver(batch.records);
        this.#delivered += batch.records.length;
        this.#batches++;
        this.#lastError = null;
        return true;
      } catch (err) {
        this.#failures++;
        this.#lastError = err instanceof Error ? err.message : String(err);
        this.#logger.warn(
          { err, sink: this.#sink.name, retryInMs: delay },
          'event sink delivery failed; retrying',
        );
        await this.#sleep(delay);
        if (this.#stopping) return false;
        delay = Math.min(delay * 2, this.#maxRetryDelayMs);
      }
    }
  }

  /**
   * The batch to deliver after the one that started at `lastDelivery` (ms): one read, and with
   * `lingerMs` what else is durable until it is full, waiting out the linger under a trickle.
   */
  async #nextBatch(reader: SpoolReader, lastDelivery: number): Promise<SpoolBatch | null> {
    let batch = await reader.read(this.#room(reader.nextSequence));
    if (batch === null || this.#stopping || this.#lingerMs === 0 || this.#full(batch)) {
      return batch;
    }
    // A backlog fills the batch from what is on disk already; only a trickle waits.
    batch = await this.#gather(reader, batch);
    const wait = lastDelivery + this.#lingerMs - Date.now();
    if (!this.#full(batch) && wait > 0) {
      await this.#sleep(wait);
      if (!this.#stopping) batch = await this.#gather(reader, batch);
    }
    return batch;
  }

  /** `batch` joined by the records that became durable since, until it is full. */
  async #gather(reader: SpoolReader, batch: SpoolBatch): Promise<SpoolBatch> {
    while (!this.#full(batch)) {
      const more = await reader.poll(this.#room(batch.lastSequence + 1, batch.records.length));
      if (more === null) break;
      batch = {
        records: batch.records.concat(more.records),
        firstSequence: batch.firstSequence,
        lastSequence: more.lastSequence,
      };
    }
    return batch;
  }

  /**
   * Records a delivery that holds `held` so far and continues at `sequence` may still take: up to
   * `maxRecords`, and with `alignBatches` up to the next multiple of it.
   */
  #room(sequence: number, held = 0): number {
    const room = this.#maxRecords - held;
    return this.#alignBatches
      ? Math.min(room, this.#maxRecords - (sequence % this.#maxRecords))
      : room;
  }

  /** True when nothing more may join `batch`. */
  #full(batch: SpoolBatch): boolean {
    return (
      this.#room(batch.lastSequence + 1, batch.records.length) <= 0 ||
      (this.#alignBatches && (batch.lastSequence + 1) % this.#maxRecords === 0)
    );
  }

  /**
   * Acknowledges when the interval has passed, else once it has (one timer at a time). The
   * acknowledgement (two fsyncs) runs beside the next delivery, not before it: until it is
   * durable, a crash only means delivering those records again.
   */
  #ackSoon(): void {
    const wait = this.#lastAckAt + this.#ackIntervalMs - Date.now();
    if (wait > 0) {
      this.#ackTimer ??= setTimeout(() => {
        this.#ackTimer = null;
        this.#ackInBackground();
      }, wait);
      return;
    }
    this.#ackInBackground();
  }

  #ackInBackground(): void {
    this.#ack().catch((err: unknown) =>
      this.#logger.warn({ err, sink: this.#sink.name }, 'acknowledging the spool failed'),
    );
  }

  /** Acknowledges everything stored so far. */
  #ack(): Promise<void> {
    const next = this.#acks.then(async () => {
      const sequence = this.#pendingAck;
      if (sequence === null) return;
      this.#pendingAck = null;
      this.#lastAckAt = Date.now();
      await this.#spool.ack(this.#sink.name, sequence);
    });
    // A failed acknowledgement is reported to its caller; later ones still run.
    this.#acks = next.catch(() => undefined);
    return next;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolveSleep) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolveSleep();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }
}
