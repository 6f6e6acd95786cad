import { describe, expect, it } from 'vitest';
import { parsePgbenchOutput } from './parse-pgbench-output.js';

// Captured from pgbench 15.18 (Debian 12): `pgbench -S -T 1 -c 2 -j 2`.
const SELECT_ONLY_15 = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 2
number of threads: 2
maximum number of tries: 1
duration: 1 s
number of transactions actually processed: 26181
number of failed transactions: 0 (0.000%)
latency average = 0.076 ms
initial connection time = 14.338 ms
tps = 26461.224366 (without initial connection time)
`;

// Captured from pgbench 15.18: `pgbench -t 100 -c 2` (processed count is "done/planned").
const TPCB_15 = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 2
number of threads: 1
maximum number of tries: 1
number of transactions per client: 100
number of transactions actually processed: 200/200
number of failed transactions: 0 (0.000%)
latency average = 1.223 ms
initial connection time = 21.986 ms
tps = 1635.938292 (without initial connection time)
`;

// pgbench 13 and older report tps twice; the figure without connection time comes second.
const SELECT_ONLY_13 = `transaction type: <builtin: select only>
scaling factor: 1
query mode: simple
number of clients: 4
number of threads: 1
duration: 2 s
number of transactions actually processed: 30000
latency average = 0.267 ms
tps = 14940.112233 (including connections establishing)
tps = 15012.445566 (excluding connections establishing)
`;

// pgbench 15 with serialization failures retried (--max-tries) and some still failing.
const WITH_FAILURES_15 = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: <builtin: TPC-B (sort of)>
scaling factor: 1
query mode: simple
number of clients: 8
number of threads: 1
maximum number of tries: 3
duration: 2 s
number of transactions actually processed: 4321
number of failed transactions: 12 (0.277%)
number of transactions retried: 40 (0.923%)
total number of retries: 45
latency average = 3.702 ms
initial connection time = 30.100 ms
tps = 2160.500000 (without initial connection time)
`;

describe('parsePgbenchOutput', () => {
  it('reads a pgbench 15 select-only run', () => {
    expect(parsePgbenchOutput(SELECT_ONLY_15)).toEqual({
      tps: 26461.224366,
      latencyMs: 0.076,
      transactions: 26181,
      failed: 0,
    });
  });

  it('reads "done/planned" transaction counts of runs with -t', () => {
    expect(parsePgbenchOutput(TPCB_15)).toEqual({
      tps: 1635.938292,
      latencyMs: 1.223,
      transactions: 200,
      failed: 0,
    });
  });

  it('takes the tps excluding connection time from older pgbench output', () => {
    expect(parsePgbenchOutput(SELECT_ONLY_13)).toEqual({
      tps: 15012.445566,
      latencyMs: 0.267,
      transactions: 30000,
      failed: 0,
    });
  });

  it('reports failed transactions', () => {
    expect(parsePgbenchOutput(WITH_FAILURES_15)).toMatchObject({ transactions: 4321, failed: 12 });
  });

  it('rejects output without a summary', () => {
    expect(() => parsePgbenchOutput('pgbench: error: connection to server failed\n')).toThrow(
      /no tps line/,
    );
    expect(() => parsePgbenchOutput(SELECT_ONLY_15.replace(/^latency.*$/m, ''))).toThrow(
      /latency average/,
    );
  });
});
