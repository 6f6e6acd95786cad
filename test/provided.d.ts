import type { PostgresCredentials, PostgresRoles } from '@portcullis/testkit';

/** The shared PostgreSQL server that test/global-setup.ts starts for the integration run. */
export interface SharedPostgres {
  host: '127.0.0.1';
  port: number;
  superuser: { user: 'postgres'; password: string };
  roles: PostgresRoles;
  /** PEM of the CA that signed the server certificate. */
  tlsCa: string;
}

export type { PostgresCredentials };

declare module 'vitest' {
  export interface ProvidedContext {
    /** The shared PostgreSQL server; suites read it with `inject('postgres')`. */
    postgres: SharedPostgres;
  }
}
