import { readFile } from 'node:fs/promises';
import { PortcullisError } from '@portcullis/core';
import { ensurePrivateKeyFile } from '../config/key-file.js';
import type { EventsConfig } from '../config/load-config.js';

/**
 * The key of the store's per-session hash chains: the configured one, or the key generated once
 * into `chainKeyFile` (32 random bytes, hex, mode 0600). Created with O_EXCL, so two processes
 * starting at once agree on one key. A generated key that group or others can read is refused:
 * whoever can read it can re-sign altered rows.
 */
export async function loadChainKey(store: NonNullable<EventsConfig['store']>): Promise<string> {
  if (store.chainKey !== null) return store.chainKey;
  const path = store.chainKeyFile;
  await ensurePrivateKeyFile(path, 'the event hash-chain key', keyError);
  try {
    const key = (await readFile(path, 'utf8')).trim();
    // A key file another process is still writing reads empty for a moment.
    if (key.length === 0) {
      await new Promise((resolveWait) => setTimeout(resolveWait, 50));
      const again = (await readFile(path, 'utf8')).trim();
      if (again.length === 0) throw new Error('the file is empty');
      return again;
    }
    return key;
  } catch (err) {
    if (err instanceof PortcullisError) throw err;
    throw keyError(`cannot read ${path}`, err);
  }
}

function keyError(message: string, err: unknown): PortcullisError {
  return new PortcullisError(
    'PCL_ERR_CONFIG_SECRET',
    `events.store.chainKey: ${message}: ${(err as Error).message}`,
    { cause: err },
  );
}
