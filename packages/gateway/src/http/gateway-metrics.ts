import type { EventSink, SessionEvent } from '@portcullis/core';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { EventPipelineSnapshot } from '../events/event-pipeline.js';
import { sinkAccepts } from '../events/event-admission.js';

/**
 * The gateway's Prometheus metrics, derived from the session events it records (so every
 * figure matches the audit trail) plus process metrics. One registry per process; in
 * multi-process mode the primary aggregates its workers' registries.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #sessionsActive: Gauge;
  readonly #sessions: Counter;
  readonly #statements: Counter;
  readonly #rows: Counter;
  readonly #bytes: Counter;
  readonly #masked: Counter;
  readonly #errors: Counter;
  readonly #approvals: Counter;
  readonly #authFailures: Counter;

  constructor(options: { readonly processMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_' });
    }
    this.#sessionsActive = new Gauge({
      name: 'portcullis_sessions_active',
      help: 'Sessions open now, per resource.',
      labelNames: ['resource'],
      registers,
    });
    this.#sessions = new Counter({
      name: 'portcullis_sessions_total',
      help: 'Sessions ended, per resource and reason (client-closed, upstream-lost, …).',
      labelNames: ['resource', 'reason'],
      registers,
    });
    this.#statements = new Counter({
      name: 'portcullis_statements_total',
      help: 'Statements recorded, per resource, kind and verdict (allow, block, review).',
      labelNames: ['resource', 'kind', 'verdict'],
      registers,
    });
    this.#rows = new Counter({
      name: 'portcullis_result_rows_total',
      help: 'Rows returned to clients, per resource.',
      labelNames: ['resource'],
      registers,
    });
    this.#bytes = new Counter({
      name: 'portcullis_result_bytes_total',
      help: 'Result bytes (DataRow and CopyData) returned to clients, per resource.',
      labelNames: ['resource'],
      registers,
    });
    this.#masked = new Counter({
      name: 'portcullis_masked_values_total',
      help: 'Values masked in results, per resource.',
      labelNames: ['resource'],
      registers,
    });
    this.#errors = new Counter({
      name: 'portcullis_statement_errors_total',
      help: 'Statements that failed, per resource and SQLSTATE class.',
      labelNames: ['resource', 'class'],
      registers,
    });
    this.#approvals = new Counter({
      name: 'portcullis_approvals_total',
      help: 'Held statements, per resource and step: requested, granted, denied, expired, withdrawn.',
      labelNames: ['resource', 'step'],
      registers,
    });
    this.#authFailures = new Counter({
      name: 'portcullis_auth_failures_total',
      help: 'Refused logins, per resource and reason (unknown-token, expired, no-access, …).',
      labelNames: ['resource', 'reason'],
      registers,
    });
  }

  /** Counts one recorded event. */
  observe(event: SessionEvent): void {
    const resource = event.resource;
    switch (event.type) {
      case 'session.start':
        this.#sessionsActive.inc({ resource });
        return;
      case 'session.end':
        this.#sessionsActive.dec({ resource });
        this.#sessions.inc({ resource, reason: event.summary?.reason ?? 'unknown' });
        return;
      case 'statement': {
        const s = event.statement;
        if (s === undefined) return;
        this.#statements.inc({ resource, kind: s.kind, verdict: s.verdict });
        if (s.rows > 0) this.#rows.inc({ resource }, s.rows);
        if (s.bytes > 0) this.#bytes.inc({ resource }, s.bytes);
        if (s.masked !== undefined && s.masked.values > 0) {
          this.#masked.inc({ resource }, s.masked.values);
        }
        if (s.error !== null) this.#errors.inc({ resource, class: s.error.code.slice(0, 2) });
        return;
      }
      case 'approval.requested':
      case 'approval.granted':
      case 'approval.denied':
      case 'approval.expired':
      case 'approval.withdrawn':
        this.#approvals.inc({ resource, step: event.type.slice('approval.'.length) });
        return;
      case 'auth.failed':
        this.#authFailures.inc({ resource, reason: event.authFailure?.reason ?? 'unknown' });
        return;
      default:
    }
  }

  /**
   * Adds the event pipeline's gauges, read from `snapshot` at each scrape: spool size and limit,
   * whether it admits new sessions, per-sink lag and deliveries, dropped (fail-open), lost and
   * corrupted events. Summed over the workers in multi-process mode.
   */
  watchEvents(snapshot: () => EventPipelineSnapshot): void {
    const registers = [this.registry];
    let current: EventPipelineSnapshot | null = null;
    // One snapshot per scrape, shared by every gauge (the first gauge collected takes it).
    const read = (): EventPipelineSnapshot => {
      if (current === null) {
        current = snapshot();
        setImmediate(() => (current = null));
      }
      return current;
    };
    const gauge = (
      name: string,
      help: string,
      value: (s: EventPipelineSnapshot) => number,
    ): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(value(read()));
        },
      });
    };
    gauge('portcullis_event_spool_bytes', 'Bytes of events in the spool.', (s) => s.spoolBytes);
    gauge(
      'portcullis_event_spool_max_bytes',
      'The spool size limit (events.spool.maxBytes).',
      (s) => s.spoolMaxBytes,
    );
    gauge(
      'portcullis_event_spool_accepting',
      '1 while the spool admits new sessions and statements, 0 while it refuses them (fail-closed).',
      (s) => (s.accepting ? 1 : 0),
    );
    gauge(
      'portcullis_event_spool_dropped_events',
      'Events dropped because the spool was full (fail-open), since start.',
      (s) => s.dropped,
    );
    gauge(
      'portcullis_event_spool_lost_events',
      'Events of admitted sessions that found the spool full to the last byte (fail-closed), since start.',
      (s) => s.lost,
    );
    gauge(
      'portcullis_event_spool_corrupted_records',
      'Spool records lost to corruption (skipped on read), since start.',
      (s) => s.corrupted,
    );
    const perSink = (
      name: string,
      help: string,
      value: (s: EventPipelineSnapshot['sinks'][number]) => number,
    ): void => {
      new Gauge({
        name,
        help,
        labelNames: ['sink'],
        registers,
        collect() {
          this.reset();
          for (const sink of read().sinks) this.set({ sink: sink.name }, value(sink));
        },
      });
    };
    perSink(
      'portcullis_event_sink_lag_records',
      'Spooled events a sink has not stored yet.',
      (s) => s.lagRecords,
    );
    perSink(
      'portcullis_event_sink_lag_bytes',
      'Spooled bytes a sink has not stored yet.',
      (s) => s.lagBytes,
    );
    perSink(
      'portcullis_event_sink_delivered_events',
      'Events a sink stored, since start.',
      (s) => s.delivered,
    );
    perSink(
      'portcullis_event_sink_failures',
      'Failed deliveries to a sink (each is retried), since start.',
      (s) => s.failures,
    );
  }

  /** Prometheus text exposition of this registry. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

/**
 * An event sink that counts every event in `metrics` once `sink` took it (a refused session is
 * not counted), and passes on whether `sink` admits new sessions.
 */
export function meteredSink(sink: EventSink, metrics: GatewayMetrics): EventSink {
  return {
    write(event) {
      sink.write(event);
      metrics.observe(event);
    },
    get accepting() {
      return sinkAccepts(sink);
    },
    flush: () => sink.flush(),
    close: () => sink.close(),
  } as EventSink;
}
