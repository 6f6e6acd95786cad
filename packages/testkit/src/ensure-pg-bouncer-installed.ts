import { existsSync } from 'node:fs';
import { ensureDebianPackages } from './ensure-debian-packages.js';

const CANDIDATES = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer'];

/**
 * Makes sure PgBouncer is installed, installing the Debian package `pgbouncer` when not.
 * Installing it does not start Debian's own PgBouncer service where services are kept from
 * starting (as in containers); the testkit never uses that service.
 *
 * @returns the path of the `pgbouncer` program.
 */
export async function ensurePgBouncerInstalled(): Promise<{ bin: string }> {
  const present = CANDIDATES.find((path) => existsSync(path));
  if (present !== undefined) return { bin: present };
  await ensureDebianPackages({ packages: ['pgbouncer'], probe: ['/usr/sbin/pgbouncer'] });
  return { bin: '/usr/sbin/pgbouncer' };
}
