import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ensureDebianPackages } from './ensure-debian-packages.js';

const ROOT = '/usr/lib/postgresql';
/** The programs the testkit runs from a PostgreSQL bin directory. */
const PROGRAMS = ['postgres', 'initdb', 'pg_ctl', 'pgbench', 'psql'];
/** PostgreSQL's major version on Debian 12, expected after installing `postgresql`. */
const DEBIAN_DEFAULT_VERSION = '15';

/** The newest `/usr/lib/postgresql/<version>/bin` that has every program the testkit needs. */
function findBinDir(): string | undefined {
  if (!existsSync(ROOT)) return undefined;
  const versions = readdirSync(ROOT)
    .filter((name) => /^\d+(\.\d+)?$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const binDir = join(ROOT, version, 'bin');
    if (PROGRAMS.every((program) => existsSync(join(binDir, program)))) return binDir;
  }
  return undefined;
}

let installing: Promise<string> | undefined;

/**
 * Makes sure a PostgreSQL server with its client programs (`initdb`, `pg_ctl`, `pgbench`, `psql`)
 * is installed, installing the Debian packages `postgresql` and `postgresql-contrib` when not,
 * and finds `/usr/lib/postgresql/<version>/bin` (the newest version when several are present).
 *
 * @returns the bin directory of the server programs.
 */
export async function ensurePostgresInstalled(): Promise<{ binDir: string }> {
  const present = findBinDir();
  if (present !== undefined) return { binDir: present };
  installing ??= (async () => {
    await ensureDebianPackages({
      packages: ['postgresql', 'postgresql-contrib'],
      probe: PROGRAMS.map((program) => join(ROOT, DEBIAN_DEFAULT_VERSION, 'bin', program)),
    }).catch((error: unknown) => {
      // Another distribution may ship a different major version; accept it if it is complete.
      if (findBinDir() === undefined) throw error;
    });
    const binDir = findBinDir();
    if (binDir === undefined) {
      throw new Error(`PostgreSQL was installed but no complete ${ROOT}/<version>/bin was found`);
    }
    return binDir;
  })().finally(() => {
    installing = undefined;
  });
  return { binDir: await installing };
}
