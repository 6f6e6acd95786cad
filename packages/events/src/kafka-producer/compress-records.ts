import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { RecordCompression } from './record-batch-builder.js';

const gzipAsync = promisify(gzip);

/** Least and most gzip levels (zlib's); 1 is the default: fastest, and JSON still shrinks ~8×. */
export const GZIP_LEVELS = { min: 1, max: 9, default: 1 } as const;

/**
 * Compresses a batch's records. gzip runs on the libuv thread pool (`zlib.gzip`, not the sync
 * form), so several partitions' batches compress at once and the event loop stays free.
 */
export async function compressRecords(
  records: Uint8Array,
  compression: Exclude<RecordCompression, 'none'>,
  level: number = GZIP_LEVELS.default,
): Promise<Buffer> {
  switch (compression) {
    case 'gzip':
      return gzipAsync(records, { level });
  }
}
