import { Command, InvalidArgumentError, Option } from 'commander';
import { chainKeyOf, openEventStore, verifyStoredChains } from '@portcullis/gateway';
import { eventsConfigOf, withProgress } from './events-config.js';
import { formatTable } from './format-table.js';
import { parseDuration } from './parse-duration.js';

interface VerifyOptions {
  dataDir: string;
  config?: string;
  session?: string;
  since?: Date;
  format: 'table' | 'json';
}

/** `--since`: a duration back from now (`7d`, `12h`) or a date/time (`2026-05-01`). */
export function parseSince(text: string, now = new Date()): Date {
  const ms = parseDuration(text);
  if (ms !== undefined) return new Date(now.getTime() - ms);
  const date = new Date(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && !Number.isNaN(date.getTime())) return date;
  throw new InvalidArgumentError('expected a duration such as 7d or 12h, or a date (2026-05-01)');
}

/**
 * `portcullis verify`: checks the per-session hash chains in the event store and lists every
 * event found altered, removed, inserted or reordered. Exits with 1 when it finds any.
 */
export function verifyCommand(): Command {
  return new Command('verify')
    .description(
      'check the hash chains of stored sessions; exits 1 when an event was altered, removed, inserted or reordered',
    )
    .option('--data-dir <dir>', 'data directory of the gateway', './.portcullis')
    .option('-c, --config <file>', 'the gateway configuration (store location, chain key)')
    .option('-s, --session <id>', 'one session (a full id or its first characters)')
    .option(
      '--since <when>',
      'sessions with events since then (7d, 12h, or a date); each is checked whole',
      (text) => parseSince(text),
    )
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .action(async (opts: VerifyOptions) => {
      const events = eventsConfigOf(opts);
      const key = await chainKeyOf(events);
      const store = await openEventStore(events);
      let report;
      try {
        report = await withProgress('verifying hash chains', () =>
          verifyStoredChains(store, key, {
            ...(opts.session === undefined ? {} : { sessionPrefix: opts.session }),
            ...(opts.since === undefined ? {} : { since: opts.since }),
          }),
        );
      } finally {
        await store.close();
      }
      if (opts.format === 'json') {
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else {
        if (report.issues.length > 0) {
          console.log(
            formatTable(
              ['problem', 'session', 'seq', 'event'],
              report.issues.map((i) => [i.problem, i.sessionId, String(i.seq), i.id || '-']),
            ),
          );
        }
        console.log(
          `${report.sessions} session(s), ${report.events} event(s) checked: ${
            report.issues.length === 0
              ? 'every chain is intact'
              : `${report.issues.length} problem(s) found`
          }`,
        );
      }
      if (report.issues.length > 0) process.exitCode = 1;
    });
}
