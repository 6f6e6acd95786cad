import type { PostgresCredentials, PostgresServer } from '@portcullis/testkit';

/** The token benchmark clients send through the gateway. */
export const BENCH_TOKEN = 'bench-token';

/**
 * A gateway configuration with one resource `bench` on `server`, logged in as `role`;
 * `resource` adds keys to the resource (policy, masking).
 */
export function benchGatewayConfig(
  server: PostgresServer,
  role: PostgresCredentials,
  resource: Record<string, unknown> = {},
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
    log: { level: 'warn' },
  };
}
