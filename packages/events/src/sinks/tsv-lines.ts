import type { SessionEvent } from '@portcullis/core';
import { encodeEventTsv, type EventTsvTranscoder, type TsvColumn } from './event-tsv.js';

/** What {@link encodeTsvLines} made of a run of spooled event records. */
export interface TsvLines {
  /** The lines, newline included, one after another from offset 0. */
  readonly lines: Buffer;
  /**
   * Per record, where its line ends in `lines` (it starts where the one before ended, or at 0);
   * -1 for a record that is not an event, which has no line.
   */
  readonly ends: Int32Array;
  /** Why each record without a line is not an event: `[record index, message]`. */
  readonly errors: readonly (readonly [number, string])[];
}

/**
 * The TabSeparated lines of the event records at `json[starts[i], ends[i])`: straight from
 * the JSON where the transcoder can, else through JSON.parse and the row mapping (which also
 * decides what is not an event). The ClickHouse sink's encoding thread runs this; `lines` has
 * an ArrayBuffer of its own, so it can be handed back without a copy: `memory` (lines the sink
 * gave back) when it has the room, else new memory.
 */
export function encodeTsvLines(
  transcoder: EventTsvTranscoder,
  columns: readonly TsvColumn[],
  json: Buffer,
  starts: Int32Array,
  ends: Int32Array,
  memory: ArrayBuffer | null = null,
): TsvLines {
  const count = starts.length;
  let total = 0;
  for (let i = 0; i < count; i++) total += ends[i]! - starts[i]!;
  // A line is usually shorter than its JSON; the room one may need is only reserved near the end.
  // Memory given for the lines is used when it has that room.
  let out =
    memory !== null && memory.byteLength >= total + 64 * 1024
      ? Buffer.from(memory)
      : // With a quarter to spare, it fits the next jobs too when the sink gives it back.
        Buffer.allocUnsafeSlow(Math.ceil((total + 64 * 1024) * 1.25));
  let at = 0;
  const lineEnds = new Int32Array(count);
  const errors: [number, string][] = [];
  const room = (bytes: number): void => {
    if (out.length - at >= bytes) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(2 * out.length, at + bytes));
    out.copy(grown, 0, 0, at);
    out = grown;
  };
  for (let i = 0; i < count; i++) {
    const from = starts[i]!;
    const to = ends[i]!;
    room(transcoder.maxLineBytes(to - from));
    let end = transcoder.transcode(json, out, at, from, to);
    if (end < 0) {
      let line: string;
      try {
        const event = JSON.parse(json.toString('utf8', from, to)) as SessionEvent;
        line = encodeEventTsv(event, columns);
      } catch (error) {
        lineEnds[i] = -1;
        errors.push([i, error instanceof Error ? error.message : String(error)]);
        continue;
      }
      room(Buffer.byteLength(line));
      end = at + out.write(line, at, 'utf8');
    }
    lineEnds[i] = end;
    at = end;
  }
  return { lines: out.subarray(0, at), ends: lineEnds, errors };
}
