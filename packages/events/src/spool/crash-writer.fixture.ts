// Child process for the crash test: appends records to the spool in `argv[2]` as fast as it can,
// flushing after every burst without waiting, and reports each flushed sequence to the parent,
// until the parent kills it with SIGKILL. Record k's payload is payload(k).
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Spool } from './spool.js';
import { payload } from './spool-test-support.fixture.js';

const dir = process.argv[2]!;
const spool = await Spool.open({ dir, segmentBytes: 64 * 1024, maxBytes: 64 * 1024 * 1024 });
process.send!({ ready: spool.lastSequence });
for (;;) {
  for (let n = 0; n < 50; n++) {
    const next = spool.lastSequence + 1;
    const sequence = spool.append(payload(next, 80 + (next % 200)));
    if (sequence !== next) throw new Error(`expected sequence ${next}, got ${sequence}`);
  }
  const upTo = spool.lastSequence;
  void spool.flush().then(() => process.send!({ flushed: upTo }));
  await nextTurn();
}
