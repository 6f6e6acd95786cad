import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PortcullisError, type SessionEvent } from '@portcullis/core';
import {
  ChdbEventStore,
  EVENT_ROW_SELECT,
  dateTimeParam,
  rowToEvent,
  verifyChain,
  type ChainIssue,
  type ChainedEvent,
  type StoredEventRow,
} from '@portcullis/events';
import type { EventsConfig } from '../config/load-config.js';
import { loadChainKey } from './chain-key.js';
import { withQueryLimits, type QueryLimits } from './event-routes-rules.js';

export { reviews, type AccessGrant, type ChainIssue, type ReviewWindow } from '@portcullis/events';

/** What reading the store needs: the gateway's API hands its sinks' store, the CLI its own. */
export type EventStoreReader = Pick<ChdbEventStore, 'query' | 'run'>;

/** Filters for {@link readStoredEvents}, as `portcullis events` takes them. */
export interface StoredEventQuery {
  /** A session id or its first characters. */
  readonly sessionPrefix?: string;
  readonly type?: string;
  /** Matches the person's subject or email. */
  readonly person?: string;
  /** The last N matching events. */
  readonly last: number;
}

/** Whether the embedded store configured in `config` has been created. */
export function eventStoreExists(config: EventsConfig): boolean {
  return config.store !== null && existsSync(config.store.dir);
}

/**
 * Opens the embedded store for reading (the CLI). chDB lets one process use a store at a time,
 * so while the gateway runs this fails with a message that says so.
 */
export async function openEventStore(config: EventsConfig): Promise<ChdbEventStore> {
  if (config.store === null) {
    throw new PortcullisError(
      'PCL_ERR_EVENTS_READ',
      'no event store is configured (events.store.kind is none)',
    );
  }
  if (!existsSync(config.store.dir)) {
    throw new PortcullisError(
      'PCL_ERR_EVENTS_READ',
      `there is no event store at ${config.store.dir} (no events recorded yet, or a different --data-dir)`,
    );
  }
  // Checked before opening: the engine prints its own lock error to stderr when it fails.
  if (heldByLiveProcess(config.store.dir)) throw storeInUse(config.store.dir);
  const store = new ChdbEventStore({
    dataDir: config.store.dir,
    chainKey: await loadChainKey(config.store),
    retentionDays: config.store.retentionDays,
  });
  try {
    await store.open();
  } catch (err) {
    await store.close().catch(() => undefined);
    if (
      /lock|another server instance/i.test(causeText(err)) ||
      heldByLiveProcess(config.store.dir)
    ) {
      throw storeInUse(config.store.dir, err);
    }
    throw err;
  }
  return store;
}

function storeInUse(dir: string, cause?: unknown): PortcullisError {
  return new PortcullisError(
    'PCL_ERR_EVENTS_READ',
    `the event store ${dir} is in use by a running gateway (one process at a time may open it); read it through the gateway's HTTP API (portcullis login, or --gateway URL), or read the JSONL file with portcullis events --file`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Whether a live process holds the store: the engine writes its pid into `status` while it has
 * the directory open (its own lock error does not always reach the message).
 */
function heldByLiveProcess(dir: string): boolean {
  let text: string;
  try {
    text = readFileSync(join(dir, 'status'), 'utf8');
  } catch {
    return false;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1] ?? NaN);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether an error (or one of its causes) says the store is locked by another process. */
export function isStoreInUse(err: unknown): boolean {
  return err instanceof PortcullisError && /in use by a running gateway/.test(err.message);
}

/**
 * Stored events matching `query`, oldest first (the last `query.last` of them); `limits` bound
 * the query when it runs beside the gateway's sinks.
 */
export async function readStoredEvents(
  store: EventStoreReader,
  query: StoredEventQuery,
  limits?: QueryLimits,
): Promise<SessionEvent[]> {
  const sql = `SELECT ${EVENT_ROW_SELECT} FROM events FINAL
WHERE ({session:String} = '' OR startsWith(session_id, {session:String}))
  AND ({type:String} = '' OR type = {type:String})
  AND ({person:String} = '' OR person_subject = {person:String} OR person_email = {person:String})
ORDER BY time DESC, session_id DESC, seq DESC
LIMIT {last:UInt64}`;
  const rows = await store.query<StoredEventRow>(
    limits === undefined ? sql : withQueryLimits(sql, limits),
    {
      session: query.sessionPrefix ?? '',
      type: query.type ?? '',
      person: query.person ?? '',
      last: query.last,
    },
  );
  return rows.map((row) => rowToEvent(row).event).reverse();
}

/** What {@link verifyStoredChains} checked and found. */
export interface ChainReport {
  readonly sessions: number;
  readonly events: number;
  readonly issues: readonly ChainIssue[];
}

/**
 * Checks the hash chains of the stored sessions: one session (a full id or its prefix), or
 * every session with an event at or after `since` (each read whole, from its first event).
 * `limits` bound the query when it runs beside the gateway's sinks.
 */
export async function verifyStoredChains(
  store: EventStoreReader,
  chainKey: string,
  options: {
    readonly sessionPrefix?: string;
    readonly since?: Date;
    readonly limits?: QueryLimits;
  } = {},
): Promise<ChainReport> {
  const sql = `SELECT ${EVENT_ROW_SELECT} FROM events FINAL
WHERE session_id IN (
  SELECT DISTINCT session_id FROM events
  WHERE ({session:String} = '' OR startsWith(session_id, {session:String}))
    AND time >= {since:DateTime64(6, 'UTC')}
)
ORDER BY session_id, time, seq`;
  const rows = await store.query<StoredEventRow>(
    options.limits === undefined ? sql : withQueryLimits(sql, options.limits),
    {
      session: options.sessionPrefix ?? '',
      since: dateTimeParam(options.since ?? new Date(0)),
    },
  );
  const chained: ChainedEvent[] = rows.map(rowToEvent);
  const sessions = new Set(chained.map((c) => c.event.sessionId));
  return {
    sessions: sessions.size,
    events: chained.length,
    issues: verifyChain(chained, chainKey),
  };
}

/** The store's chain key (configured, or the generated one). */
export function chainKeyOf(config: EventsConfig): Promise<string> {
  if (config.store === null) {
    return Promise.reject(
      new PortcullisError('PCL_ERR_EVENTS_READ', 'no event store is configured'),
    );
  }
  return loadChainKey(config.store);
}

/** The messages of an error and its causes, for matching. */
export function causeText(err: unknown): string {
  let text = '';
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 6; depth++) {
    text += ` ${e.message}`;
    e = e.cause;
  }
  return text;
}
