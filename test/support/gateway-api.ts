// The gateway's HTTP API in integration suites: a second API next to a fixture, serving what the
// fixture's own (identity only) leaves out, and a small JSON client for it.
import {
  createLogger,
  startGatewayApi,
  type EventStoreReader,
  type Gateway,
  type GatewayConfig,
} from '@portcullis/gateway';
import type { GatewayFixture } from './gateway-fixture.js';

/** What {@link startFixtureApi} serves besides identity. */
export interface FixtureApiOptions {
  /** Served instead of the fixture's configuration (another port, other reader groups). */
  readonly config?: GatewayConfig;
  /** What /metrics answers; empty by default. */
  readonly metrics?: () => Promise<string>;
  readonly approvals?: Gateway['approvals'];
  readonly access?: Gateway['access'];
  readonly eventStore?: EventStoreReader | null;
  readonly notifier?: Gateway['notifier'];
}

/** A running API and its base URL. */
export interface FixtureApi {
  readonly base: string;
  readonly port: number;
  close(): void;
}

/** Starts the gateway API for `fixture` (its identity, config and listener address). */
export async function startFixtureApi(
  fixture: GatewayFixture,
  options: FixtureApiOptions = {},
): Promise<FixtureApi> {
  const api = await startGatewayApi(
    options.config ?? fixture.config,
    createLogger('silent'),
    { ready: () => true, metrics: options.metrics ?? (() => Promise.resolve('')) },
    fixture.gateway.identity,
    options.approvals ?? null,
    options.access ?? null,
    options.eventStore ?? null,
    options.notifier ?? null,
  );
  if (api === null) throw new Error('the configuration has no HTTP listener');
  return { base: `http://127.0.0.1:${api.port}`, port: api.port, close: () => api.close() };
}

/** Calls the gateway API at `base` with an optional Bearer credential and JSON body. */
export async function apiCall(
  base: string,
  method: 'GET' | 'POST' | 'DELETE',
  path: string,
  bearer?: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}
