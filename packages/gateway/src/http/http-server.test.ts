import { silentLogger } from '@portcullis/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operationalRoutes } from './api-routes.js';
import { GatewayMetrics } from './gateway-metrics.js';
import { jsonBody, startHttpServer, type HttpServer } from './http-server.js';

let server: HttpServer;
let ready = true;
let base: string;
const metrics = new GatewayMetrics({ processMetrics: false });

beforeAll(async () => {
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    maxBodyBytes: 1024,
    logger: silentLogger,
    routes: [
      ...operationalRoutes({ ready: () => ready, metrics: () => metrics.text() }),
      {
        method: 'POST',
        path: '/echo',
        handle: (request) => {
          const body = jsonBody(request);
          return body.ok ? { status: 200, json: { got: body.value } } : body.response;
        },
      },
      {
        method: 'GET',
        path: '/boom',
        handle: () => {
          throw new Error('secret internals /etc/portcullis/key');
        },
      },
    ],
  });
  base = `http://127.0.0.1:${server.port}`;
});

afterAll(() => server?.close());

async function call(path: string, init?: RequestInit) {
  const response = await fetch(`${base}${path}`, init);
  const text = await response.text();
  return { status: response.status, type: response.headers.get('content-type'), text };
}

describe('HTTP API server', () => {
  it('answers liveness and readiness', async () => {
    expect(await call('/healthz')).toMatchObject({ status: 200, text: '{"status":"ok"}' });
    expect((await call('/readyz')).status).toBe(200);
    ready = false;
    expect(await call('/readyz')).toMatchObject({ status: 503, text: '{"status":"not-ready"}' });
    ready = true;
  });

  it('serves Prometheus metrics counted from events', async () => {
    metrics.observe({
      schema: 1,
      id: 'e1',
      type: 'statement',
      timeUs: 0,
      sessionId: 's',
      seq: 1,
      person: { subject: 'a', email: 'a@example.com', groups: [] },
      agent: null,
      authMethod: 'static-token',
      resource: 'shop',
      protocol: 'postgres',
      upstreamUser: 'app',
      client: { address: '', port: 0, application: '', user: 'a', tls: false },
      statement: {
        text: 'SELECT 1',
        protocol: 'simple',
        params: 0,
        tag: 'SELECT 1',
        rows: 3,
        bytes: 30,
        durationUs: 5,
        error: null,
        kind: 'select',
        fingerprint: 'f',
        tables: [],
        verdict: 'allow',
        rule: 'default',
        masked: { values: 2, columns: ['email'] },
      },
    });
    const common = {
      schema: 1,
      timeUs: 0,
      sessionId: 's',
      person: { subject: 'a', email: 'a@example.com', groups: [] },
      agent: null,
      authMethod: 'static-token' as const,
      resource: 'shop',
      protocol: 'postgres' as const,
      upstreamUser: 'app',
      client: { address: '', port: 0, application: '', user: 'a', tls: false },
    };
    metrics.observe({
      ...common,
      id: 'e2',
      type: 'approval.denied',
      seq: 2,
      approvalDecision: { id: 'apr_1', by: [], reason: 'no', waitedUs: 1 },
    });
    metrics.observe({
      ...common,
      id: 'e3',
      type: 'auth.failed',
      seq: 0,
      authFailure: { reason: 'expired', code: '28P01' },
    });
    const { status, type, text } = await call('/metrics');
    expect(status).toBe(200);
    expect(type).toContain('text/plain; version=0.0.4');
    expect(text).toContain(
      'portcullis_statements_total{resource="shop",kind="select",verdict="allow"} 1',
    );
    expect(text).toContain('portcullis_masked_values_total{resource="shop"} 2');
    expect(text).toContain('portcullis_approvals_total{resource="shop",step="denied"} 1');
    expect(text).toContain('portcullis_auth_failures_total{resource="shop",reason="expired"} 1');
  });

  it('answers unknown paths and methods with JSON errors', async () => {
    expect(await call('/nope')).toMatchObject({
      status: 404,
      type: 'application/json',
      text: '{"error":{"code":"not_found","message":"no API endpoint at /nope"}}',
    });
    const wrong = await fetch(`${base}/healthz`, { method: 'POST' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
  });

  it('reads JSON bodies and refuses bad ones and oversized ones', async () => {
    const post = (body: string, type = 'application/json') =>
      call('/echo', { method: 'POST', body, headers: { 'content-type': type } });
    expect(await post('{"a":1}')).toMatchObject({ status: 200, text: '{"got":{"a":1}}' });
    expect((await post('{"a":')).status).toBe(400);
    expect((await post('a=1', 'application/x-www-form-urlencoded')).status).toBe(415);
    const big = await post(JSON.stringify({ a: 'x'.repeat(5000) }));
    expect(big.status).toBe(413);
    expect(big.text).toContain('limited to 1024 bytes');
  });

  it('answers a failing handler with 500 and no internals', async () => {
    const { status, text } = await call('/boom');
    expect(status).toBe(500);
    expect(text).not.toContain('secret');
    expect(text).not.toContain('/etc');
    expect(JSON.parse(text)).toEqual({
      error: { code: 'internal', message: 'the gateway could not handle the request' },
    });
  });
});
