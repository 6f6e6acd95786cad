/** The figures {@link parsePgbenchOutput} reads from a pgbench run. */
export interface PgbenchResult {
  /** Transactions per second, excluding the time to establish connections. */
  tps: number;
  /** Average latency in milliseconds. */
  latencyMs: number;
  /** Transactions processed (successfully). */
  transactions: number;
  /** Failed transactions (0 when pgbench is older than 15 and does not report them). */
  failed: number;
}

function numberAfter(stdout: string, pattern: RegExp, what: string): number {
  const match = pattern.exec(stdout);
  const text = match?.[1];
  if (text === undefined) {
    throw new Error(`pgbench output has no ${what}:\n${stdout.trim().slice(-2000)}`);
  }
  return Number(text);
}

const NUMBER = '(\\d+(?:\\.\\d+)?)';

/**
 * Parses pgbench's summary: tps excluding connection time (the line `tps = N (without initial
 * connection time)` of pgbench 14 and later, or `(excluding connections establishing)` of older
 * versions), `latency average = N ms`, `number of transactions actually processed: N` and
 * `number of failed transactions: N`.
 *
 * @throws when the tps, latency or transaction count is missing.
 */
export function parsePgbenchOutput(stdout: string): PgbenchResult {
  const tps = numberAfter(
    stdout,
    new RegExp(
      `^tps = ${NUMBER} \\((?:without initial connection time|excluding connections establishing)\\)`,
      'im',
    ),
    'tps line (without initial connection time / excluding connections establishing)',
  );
  const latencyMs = numberAfter(
    stdout,
    new RegExp(`^latency average\\s*[=:]\\s*${NUMBER}\\s*ms`, 'im'),
    'latency average',
  );
  const transactions = numberAfter(
    stdout,
    /^number of transactions actually processed:\s*(\d+)/im,
    'number of transactions processed',
  );
  const failedMatch = /^number of failed transactions:\s*(\d+)/im.exec(stdout);
  const failed = failedMatch?.[1] === undefined ? 0 : Number(failedMatch[1]);
  return { tps, latencyMs, transactions, failed };
}
