import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { PortcullisError, type SessionEvent } from '@portcullis/core';

/** Filters for {@link readEvents}. */
export interface EventQuery {
  readonly sessionId?: string;
  readonly type?: string;
  /** Match on the person's subject or email. */
  readonly person?: string;
  /** Keep only the last N matching events. */
  readonly last?: number;
}

/** Reads events from a JSON Lines event file, oldest first. Lines that do not parse are counted. */
export async function readEvents(
  path: string,
  query: EventQuery = {},
): Promise<{ events: SessionEvent[]; unreadable: number }> {
  const events: SessionEvent[] = [];
  let unreadable = 0;
  const stream = createReadStream(path, { encoding: 'utf8' });
  const opened = new Promise<void>((resolveOpen, reject) => {
    stream.once('open', () => resolveOpen());
    stream.once('error', reject);
  });
  try {
    await opened;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const hint = code === 'ENOENT' ? ' (no events recorded yet, or a different --data-dir)' : '';
    throw new PortcullisError('PCL_ERR_EVENTS_READ', `cannot read ${path}${hint}`, { cause: err });
  }
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    if (line === '') continue;
    let event: SessionEvent;
    try {
      event = JSON.parse(line) as SessionEvent;
    } catch {
      unreadable++;
      continue;
    }
    if (query.sessionId !== undefined && event.sessionId !== query.sessionId) continue;
    if (query.type !== undefined && event.type !== query.type) continue;
    if (
      query.person !== undefined &&
      event.person?.subject !== query.person &&
      event.person?.email !== query.person
    ) {
      continue;
    }
    events.push(event);
    if (query.last !== undefined && events.length > query.last * 2)
      events.splice(0, events.length - query.last);
  }
  if (query.last !== undefined && events.length > query.last)
    events.splice(0, events.length - query.last);
  return { events, unreadable };
}
