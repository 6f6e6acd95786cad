import { createHmac } from 'node:crypto';
import type { SessionEvent } from '@portcullis/core';
import { canonicalJson } from './canonical-json.js';

/** An event with its place in its session's hash chain. */
export interface ChainedEvent {
  readonly event: SessionEvent;
  /** The hash of the session's previous event (hex); '' for the first event of a session. */
  readonly prevHash: string;
  /** HMAC-SHA-256(key, prevHash || canonicalJson(event)), hex. */
  readonly hash: string;
}

/** The last link of a session's chain: what the next event of that session chains to. */
export interface ChainHead {
  readonly seq: number;
  readonly hash: string;
}

/** The hash of one event, chained to `prevHash`. */
export function hashEvent(
  key: Buffer | string,
  prevHash: string,
  event: SessionEvent,
  canonical: (event: SessionEvent) => string = canonicalJson,
): string {
  return createHmac('sha256', key).update(prevHash).update(canonical(event)).digest('hex');
}

/**
 * Chains events per session: each event's `prevHash` is the hash of the event before it in the
 * same session (in the order given), and the first event of a session chains to the session's
 * entry in `heads` (the last event chained in an earlier batch), or to '' when there is none.
 * Pure: `heads` is read, never changed; {@link nextHeads} gives the heads after this batch.
 *
 * `canonical` must return {@link canonicalJson}'s text; a caller whose events are already in
 * sorted-key form (normalizeEvent's output) passes `JSON.stringify`, which is several times
 * faster.
 */
export function chainEvents(
  events: readonly SessionEvent[],
  key: Buffer | string,
  heads: ReadonlyMap<string, ChainHead> = new Map(),
  canonical: (event: SessionEvent) => string = canonicalJson,
): ChainedEvent[] {
  const last = new Map<string, string>();
  const out: ChainedEvent[] = new Array<ChainedEvent>(events.length);
  for (let i = 0; i < events.length; i++) {
    const event = events[i]!;
    const prevHash = last.get(event.sessionId) ?? heads.get(event.sessionId)?.hash ?? '';
    const hash = hashEvent(key, prevHash, event, canonical);
    last.set(event.sessionId, hash);
    out[i] = { event, prevHash, hash };
  }
  return out;
}

/** `heads` moved on past `chained`: each session's last event becomes its head. */
export function nextHeads(
  heads: ReadonlyMap<string, ChainHead>,
  chained: readonly ChainedEvent[],
): Map<string, ChainHead> {
  const next = new Map(heads);
  for (const { event, hash } of chained) next.set(event.sessionId, { seq: event.seq, hash });
  return next;
}

/** What {@link verifyChain} found wrong with one event, or at one place of a chain. */
export interface ChainIssue {
  /**
   * - `altered`: the event's hash does not match its content (or its content was signed with
   *   another key).
   * - `removed`: an event is missing before this one (a gap in `seq`, or `prevHash` names an event
   *   that is not there), or after the last one when the expected head says so.
   * - `inserted`: a second event claims a `seq` already taken, or an event lies past the expected
   *   head.
   * - `reordered`: the event comes after one with a higher `seq`.
   */
  readonly problem: 'altered' | 'removed' | 'inserted' | 'reordered';
  readonly sessionId: string;
  /** The `seq` where the problem shows (for `removed`, the first missing one). */
  readonly seq: number;
  /** The event the problem was found at ('' when it is missing from the end). */
  readonly id: string;
}

/**
 * Checks the hash chains of `rows` (any number of sessions, each session's rows in the order they
 * were stored or read, e.g. by time). Within a session it expects `seq` to run 0, 1, 2, … with
 * each `prevHash` equal to the previous row's hash and each hash matching its content.
 *
 * A chain alone cannot show that events were cut off its end. Pass `heads` (the last `seq` and
 * hash the writer chained per session, kept apart from the rows) to catch that too; a session in
 * `heads` with no rows at all is reported as removed from seq 0.
 */
export function verifyChain(
  rows: readonly ChainedEvent[],
  key: Buffer | string,
  heads?: ReadonlyMap<string, ChainHead>,
): ChainIssue[] {
  const bySession = new Map<string, ChainedEvent[]>();
  for (const row of rows) {
    const list = bySession.get(row.event.sessionId);
    if (list === undefined) bySession.set(row.event.sessionId, [row]);
    else list.push(row);
  }
  const issues: ChainIssue[] = [];
  for (const [sessionId, list] of bySession) {
    verifySession(sessionId, list, key, heads?.get(sessionId), issues);
  }
  if (heads !== undefined) {
    for (const [sessionId] of heads) {
      if (!bySession.has(sessionId)) issues.push({ problem: 'removed', sessionId, seq: 0, id: '' });
    }
  }
  return issues;
}

function verifySession(
  sessionId: string,
  list: readonly ChainedEvent[],
  key: Buffer | string,
  head: ChainHead | undefined,
  issues: ChainIssue[],
): void {
  const seen = new Set<number>();
  let expectedSeq = 0;
  let prevHash = '';
  let highest = -1;
  for (const { event, prevHash: claimedPrev, hash } of list) {
    const { seq, id } = event;
    const authentic = hashEvent(key, claimedPrev, event) === hash;
    if (seen.has(seq)) {
      issues.push({ problem: 'inserted', sessionId, seq, id });
      continue;
    }
    seen.add(seq);
    if (seq < highest) {
      issues.push({ problem: 'reordered', sessionId, seq, id });
      continue;
    }
    highest = seq;
    if (head !== undefined && seq > head.seq) {
      issues.push({ problem: 'inserted', sessionId, seq, id });
      continue;
    }
    if (!authentic) {
      issues.push({ problem: 'altered', sessionId, seq, id });
    } else if (seq > expectedSeq || claimedPrev !== prevHash) {
      issues.push({ problem: 'removed', sessionId, seq: Math.min(seq, expectedSeq), id });
    }
    // Carry on from this row either way, so one problem is reported once, not at every row after.
    expectedSeq = seq + 1;
    prevHash = hash;
  }
  if (head !== undefined) {
    if (expectedSeq <= head.seq) {
      issues.push({ problem: 'removed', sessionId, seq: expectedSeq, id: '' });
    } else if (expectedSeq === head.seq + 1 && prevHash !== head.hash) {
      issues.push({ problem: 'altered', sessionId, seq: head.seq, id: '' });
    }
  }
}
