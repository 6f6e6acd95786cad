import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { acquireDirectoryLock, type DirectoryLock } from './acquire-directory-lock.js';
import { ensureDemoSeed } from './demo-seed.js';
import { PgliteWireServer } from './pglite-wire-server.js';

/** The running demo database, as the gateway's upstream. */
export interface DemoUpstream {
  host: string;
  /** The real port, also when 0 was asked for. */
  port: number;
  /** Always `postgres`: PGlite has that one database, whatever a client names at startup. */
  database: string;
  /** Always `postgres`, a superuser; no password is asked for (trust). */
  user: string;
  /** PGlite's data directory. */
  dataDir: string;
  /** True when this start loaded the demo data, false when it was already there. */
  seeded: boolean;
  /** Disconnects clients, stops listening and closes the database; safe to call twice. */
  close(): Promise<void>;
}

/** Options for {@link startDemoUpstream}. */
export interface StartDemoUpstreamOptions {
  /** The demo's state directory; the database lives in `<dataDir>/demo-postgres`. */
  dataDir: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Human-readable progress while starting, and notable events afterwards (database failures, timeouts). */
  onProgress?: (message: string) => void;
  /** Client connections served at once (default 32). */
  maxConnections?: number;
  /** While another session waits, a session idle inside a transaction is disconnected after this long (default 30 s). */
  idleInTransactionTimeoutMs?: number;
}

/**
 * Starts PGlite persisted under `dataDir` (in `<dataDir>/demo-postgres`), seeds it on first run (idempotent:
 * re-running on an existing directory adds no rows), and serves it over the PostgreSQL wire protocol on host:port.
 * port 0 = any free port; the returned port is the real one. Several concurrent connections are served one
 * transaction at a time, each with its own session settings (see {@link PgliteWireServer}).
 */
export async function startDemoUpstream(opts: StartDemoUpstreamOptions): Promise<DemoUpstream> {
  const progress = opts.onProgress ?? (() => {});
  const host = opts.host ?? '127.0.0.1';
  const dataDir = join(opts.dataDir, 'demo-postgres');
  await mkdir(opts.dataDir, { recursive: true });
  const lock: DirectoryLock = await acquireDirectoryLock(
    `${dataDir}.lock`,
    `the demo database in ${dataDir}`,
  );
  let db: PGlite | null = null;
  let server: PgliteWireServer | null = null;
  try {
    const fresh = !existsSync(join(dataDir, 'PG_VERSION'));
    progress(
      fresh
        ? `Creating the demo database in ${dataDir} (first run, takes a few seconds)`
        : `Opening the demo database in ${dataDir}`,
    );
    db = await openDatabase(dataDir);
    const seed = await ensureDemoSeed(db, { onProgress: progress });
    if (seed.seeded) progress(`Demo data loaded in ${(seed.elapsedMs / 1000).toFixed(1)} s`);
    server = new PgliteWireServer({
      db,
      host,
      port: opts.port ?? 0,
      ...(opts.maxConnections !== undefined && { maxConnections: opts.maxConnections }),
      ...(opts.idleInTransactionTimeoutMs !== undefined && {
        idleInTransactionTimeoutMs: opts.idleInTransactionTimeoutMs,
      }),
      reopen: () => openDatabase(dataDir),
      onEvent: progress,
    });
    const address = await server.start();
    progress(`Demo database listening on ${address.host}:${address.port}`);
    const running = server;
    let closing: Promise<void> | null = null;
    return {
      host: address.host,
      port: address.port,
      database: 'postgres',
      user: 'postgres',
      dataDir,
      seeded: seed.seeded,
      close: () =>
        (closing ??= (async () => {
          try {
            await running.stop();
            await running.db?.close();
          } finally {
            await lock.release();
          }
        })()),
    };
  } catch (error) {
    await server?.stop().catch(() => undefined);
    await db?.close().catch(() => undefined);
    await lock.release();
    throw error;
  }
}

async function openDatabase(dataDir: string): Promise<PGlite> {
  try {
    return await PGlite.create({ dataDir });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `could not open the demo database in ${dataDir} (${reason}); delete that directory to start afresh`,
      {
        cause: error,
      },
    );
  }
}
