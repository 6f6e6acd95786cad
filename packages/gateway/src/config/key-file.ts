import { randomBytes } from 'node:crypto';
import { mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PortcullisError } from '@portcullis/core';

/**
 * Makes sure the secret key file at `path` exists and only its owner can read it: when missing it
 * is generated (32 random bytes, hex, mode 0600, its directory made 0700). Created with O_EXCL, so
 * processes starting at once agree on one key. A file group or others can read is refused, named
 * as `what`: whoever reads the key can use it. Reading the key is the caller's (each checks its
 * own format); `keyError` words the failures to create or stat the file.
 */
export async function ensurePrivateKeyFile(
  path: string,
  what: string,
  keyError: (message: string, err: unknown) => PortcullisError,
): Promise<void> {
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(`${randomBytes(32).toString('hex')}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      return ensurePrivateKeyFile(path, what, keyError);
    }
    if (code !== 'EEXIST') throw keyError(`cannot create ${path}`, err);
  }
  const info = await stat(path).catch((err: unknown) => {
    throw keyError(`cannot read ${path}`, err);
  });
  if ((info.mode & 0o077) !== 0) {
    throw new PortcullisError(
      'PCL_ERR_CONFIG_SECRET',
      `${path} (${what}) is readable by others; run chmod 600 ${path}`,
    );
  }
}
