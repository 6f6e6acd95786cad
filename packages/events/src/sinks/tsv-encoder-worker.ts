// The thread behind TsvEncoderThread, a Piscina task handler: encodes the records of one job and
// sends their lines back, the memory transferred, not copied. Loaded as compiled JS in
// production and as TypeScript through tsx under tests.
import { Piscina } from 'piscina';
import { columnsOf, type ClickHouseSchemaFlavour } from './clickhouse-columns.js';
import { EventTsvTranscoder } from './event-tsv.js';
import type { TsvEncodeJob, TsvEncodeReply } from './tsv-encoder-thread.js';
import { encodeTsvLines } from './tsv-lines.js';

type Movable = Parameters<typeof Piscina.move>[0];

const columns = columnsOf((Piscina.workerData as { flavour: ClickHouseSchemaFlavour }).flavour);
const transcoder = new EventTsvTranscoder(columns);

export default function encodeJob(job: TsvEncodeJob): unknown {
  const { lines, ends, errors } = encodeTsvLines(
    transcoder,
    columns,
    Buffer.from(job.json),
    job.starts,
    job.ends,
    job.lines,
  );
  const memory = lines.buffer as ArrayBuffer;
  // The job's memory goes back too, for the next job.
  const reply: TsvEncodeReply = {
    json: job.json,
    lines: memory,
    length: lines.length,
    ends,
    errors,
  };
  // Piscina transfers only what a top-level movable lists; nested buffers would be copied.
  return Piscina.move({
    [Piscina.transferableSymbol]: [job.json, memory],
    [Piscina.valueSymbol]: reply,
  } as unknown as Movable);
}
