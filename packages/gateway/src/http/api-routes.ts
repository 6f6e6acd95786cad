import type { ApiRoute } from './http-server.js';

/** What the operational endpoints read from the running gateway. */
export interface OperationalState {
  /** Whether the gateway accepts sessions (listeners up, not shutting down). */
  ready(): boolean;
  /** Prometheus text exposition of the gateway's metrics. */
  metrics(): Promise<string>;
}

/** Content type of the Prometheus text format. */
const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Liveness, readiness and metrics: what orchestrators and Prometheus scrape. Later features
 * (login, tokens, approvals) add their routes beside these; docs/openapi.yaml describes them all.
 */
export function operationalRoutes(state: OperationalState): ApiRoute[] {
  return [
    {
      method: 'GET',
      path: '/healthz',
      handle: () => ({ status: 200, json: { status: 'ok' } }),
    },
    {
      method: 'GET',
      path: '/readyz',
      handle: () =>
        state.ready()
          ? { status: 200, json: { status: 'ready' } }
          : { status: 503, json: { status: 'not-ready' } },
    },
    {
      method: 'GET',
      path: '/metrics',
      handle: async () => ({
        status: 200,
        text: await state.metrics(),
        contentType: PROMETHEUS_TEXT,
      }),
    },
  ];
}
