import type { EventSink, SessionEvent } from '@portcullis/core';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

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
      default:
    }
  }

  /** Prometheus text exposition of this registry. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** An event sink that counts every event in `metrics` before passing it on. */
export function meteredSink(sink: EventSink, metrics: GatewayMetrics): EventSink {
  return {
    write(event) {
      metrics.observe(event);
      sink.write(event);
    },
    flush: () => sink.flush(),
    close: () => sink.close(),
  };
}
