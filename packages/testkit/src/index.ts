/**
 * Launchers for real services used by integration tests and benchmarks: PostgreSQL and
 * PgBouncer on free loopback ports, installed from Debian packages when missing, stopped when the
 * test process exits.
 *
 * @packageDocumentation
 */
export { ensureDebianPackages, type DebianPackagesRequest } from './ensure-debian-packages.js';
export { ensurePgBouncerInstalled } from './ensure-pg-bouncer-installed.js';
export { ensurePostgresInstalled } from './ensure-postgres-installed.js';
export { freePort } from './free-port.js';
export { generateTlsCertificates, type TlsCertificates } from './generate-tls-certificates.js';
export { parsePgbenchOutput, type PgbenchResult } from './parse-pgbench-output.js';
export { runProgram, type RunProgramOptions, type RunProgramResult } from './run-program.js';
export {
  startPgBouncer,
  type PgBouncerServer,
  type StartPgBouncerOptions,
} from './start-pg-bouncer.js';
export {
  startPostgres,
  type PostgresCredentials,
  type PostgresRoles,
  type PostgresServer,
  type StartPostgresOptions,
} from './start-postgres.js';
export {
  startClickHouse,
  type ClickHouseServer,
  type StartClickHouseOptions,
} from './start-click-house.js';
export { stopAllServices } from './stop-all-services.js';
export {
  ensureKafkaJars,
  KAFKA_VERSION,
  startKafka,
  type EnsureKafkaJarsOptions,
  type KafkaJars,
  type KafkaSaslPlain,
  type KafkaServer,
  type StartKafkaOptions,
} from './start-kafka.js';
export {
  startGatewayProcess,
  type GatewayProcess,
  type StartGatewayProcessOptions,
} from './start-gateway-process.js';
export {
  startOidcProvider,
  type OidcAgent,
  type OidcClientCredentials,
  type OidcPerson,
  type OidcProviderServer,
  type StartOidcProviderOptions,
} from './start-oidc-provider.js';
