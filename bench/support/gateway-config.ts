import type { PostgresCredentials, PostgresServer } from '@portcullis/testkit';

/** The token benchmark clients send through the gateway. */
export const BENCH_TOKEN = 'bench-token';

/**
 * Events as a production gateway at this load would record them: through the durable spool to
 * the JSONL file, without the embedded store (which shares the gateway's cores; the pgbench
 * bench measures it in a row of its own).
 */
export const BENCH_EVENTS: Record<string, unknown> = { store: { kind: 'none' } };

/**
 * A gateway configuration with one resource `bench` on `server`, logged in as `role`;
 * `resource` adds keys to the resource (policy, masking), `events` replaces {@link BENCH_EVENTS}.
 */
export function benchGatewayConfig(
  server: PostgresServer,
  role: PostgresCredentials,
  resource: Record<string, unknown> = {},
  events: Record<string, unknown> = BENCH_EVENTS,
): Record<string, unknown> {
  return {
    listeners: { postgres: { host: '127.0.0.1', port: 0, insecure: true } },
    resources: {
      bench: {
        type: 'postgres',
        host: server.host,
        port: server.port,
        database: 'bench',
        user: role.user,
        password: { value: role.password },
        ...resource,
      },
    },
    tokens: [
      { token: { value: BENCH_TOKEN }, person: { subject: 'bench', email: 'bench@example.com' } },
    ],
    events,
    log: { level: 'warn' },
  };
}
