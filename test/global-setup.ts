// Global setup of the `integration` vitest project: one real PostgreSQL server (installed from
// Debian packages when missing) shared by every integration suite, stopped after the run.
// Suites read its address and credentials with `inject('postgres')` (typed in provided.d.ts).
import { startPostgres } from '@portcullis/testkit';
import type { TestProject } from 'vitest/node';
import type {} from './provided.js';

/** Starts the shared PostgreSQL server and provides it as `postgres`; returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startPostgres();
  project.provide('postgres', {
    host: server.host,
    port: server.port,
    superuser: server.superuser,
    roles: server.roles,
    tlsCa: server.tlsCa,
  });
  return async () => {
    await server.stop();
  };
}
