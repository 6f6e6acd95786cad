import {
  PortcullisError,
  isPortcullisError,
  silentLogger,
  type EventSink,
  type Logger,
  type SessionEvent,
} from '@portcullis/core';
import type { Spool, SpoolEventSink } from '@portcullis/events';

/** SQLSTATE told to clients refused because events cannot be recorded (disk_full). */
export const EVENTS_REFUSED_SQLSTATE = '53100';
/** What such a client is told. */
export const EVENTS_REFUSED_MESSAGE =
  'Portcullis cannot record events right now (its event spool is full), so new sessions and statements are refused';
/** The hint that goes with it. */
export const EVENTS_REFUSED_HINT =
  'the event sinks are down or behind; an operator should check the gateway log and the portcullis_event_spool_* metrics, or raise events.spool.maxBytes';

/** An event sink that can say whether new sessions and statements may start. */
export interface AdmittingEventSink extends EventSink {
  /** False while an event of a new session or statement could not be recorded. */
  readonly accepting: boolean;
}

/** Whether `sink` takes new sessions and statements (sinks without admission always do). */
export function sinkAccepts(sink: EventSink): boolean {
  return (sink as Partial<AdmittingEventSink>).accepting !== false;
}

/** The error a refused session or statement raises. */
export function eventsRefused(cause?: unknown): PortcullisError {
  return new PortcullisError(
    'PCL_ERR_SPOOL_FULL',
    EVENTS_REFUSED_MESSAGE,
    cause === undefined ? {} : { cause },
  );
}

/** Options of {@link SpoolAdmission}. */
export interface SpoolAdmissionOptions {
  readonly maxBytes: number;
  readonly whenFull: 'fail-closed' | 'fail-open';
  readonly logger?: Logger;
  /**
   * Bytes kept free for events of sessions and statements already admitted (their statement
   * results and session ends); default maxBytes / 16, at most 16 MiB.
   */
  readonly reserveBytes?: number;
}

/**
 * The gateway's event sink in front of the spool, with admission control for `fail-closed`.
 *
 * A statement is recorded after it ran, so the spool must have room for its event before it
 * starts. `accepting` turns false once the spool is within `reserveBytes` of its limit (or the
 * disk refused its last write): the session code then refuses new sessions (`session.start`,
 * `auth.failed`: {@link write} throws `PCL_ERR_SPOOL_FULL`) and new statements (it checks
 * {@link sinkAccepts} before forwarding one). Events of work already admitted use the reserve;
 * if even that is gone, the event is counted in {@link lost} and logged as an error rather than
 * thrown into a session that is already running.
 *
 * Under `fail-open` it always accepts and the spool drops (and counts) what does not fit.
 */
export class SpoolAdmission implements AdmittingEventSink {
  readonly #spool: Spool;
  readonly #inner: SpoolEventSink;
  readonly #limit: number;
  readonly #failClosed: boolean;
  readonly #logger: Logger;
  #lost = 0;
  #lastLostLog = -Infinity;

  constructor(spool: Spool, inner: SpoolEventSink, options: SpoolAdmissionOptions) {
    this.#spool = spool;
    this.#inner = inner;
    const reserve =
      options.reserveBytes ?? Math.min(16 * 1024 * 1024, Math.floor(options.maxBytes / 16));
    this.#limit = options.maxBytes - reserve;
    this.#failClosed = options.whenFull === 'fail-closed';
    this.#logger = options.logger ?? silentLogger;
  }

  get accepting(): boolean {
    if (!this.#failClosed) return true;
    const spool = this.#spool;
    return !spool.failing && spool.diskBytes + spool.bufferedBytes <= this.#limit;
  }

  /** Events of admitted work that could not be recorded (fail-closed, spool full to the last byte). */
  get lost(): number {
    return this.#lost;
  }

  write(event: SessionEvent): void {
    const admits = event.type === 'session.start' || event.type === 'auth.failed';
    if (admits && !this.accepting) throw eventsRefused();
    try {
      this.#inner.write(event);
    } catch (err) {
      if (admits) throw isPortcullisError(err, 'PCL_ERR_SPOOL_FULL') ? err : eventsRefused(err);
      this.#lost++;
      const now = performance.now();
      if (now - this.#lastLostLog >= 10_000) {
        this.#lastLostLog = now;
        this.#logger.error(
          { err, lost: this.#lost, type: event.type, sessionId: event.sessionId },
          'an event of an admitted session could not be spooled and is lost',
        );
      }
    }
  }

  flush(): Promise<void> {
    return this.#inner.flush();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
