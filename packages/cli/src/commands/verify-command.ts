import { Command, InvalidArgumentError, Option } from 'commander';
import { chainKeyOf, verifyStoredChains, type ChainReport } from '@portcullis/gateway';
import { httpUrlOption } from './cli-options.js';
import {
  CONFIG_FILE_OPTION_HELP,
  GATEWAY_OPTION_HELP,
  closeEventSource,
  explainApiFailure,
  openEventSource,
} from './event-source.js';
import { withProgress } from './events-config.js';
import { formatTable } from './format-table.js';
import { parseDuration } from './parse-duration.js';

interface VerifyOptions {
  dataDir: string;
  config?: string;
  session?: string;
  since?: Date;
  format: 'table' | 'json';
  gateway?: string;
  configFile?: string;
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
      "check the hash chains of stored sessions (through the gateway's API while it runs); exits 1 when an event was altered, removed, inserted or reordered",
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
    .option('--gateway <url>', GATEWAY_OPTION_HELP, httpUrlOption)
    .option('--config-file <path>', CONFIG_FILE_OPTION_HELP)
    .action(async (opts: VerifyOptions) => {
      const scope = {
        ...(opts.session === undefined ? {} : { sessionPrefix: opts.session }),
        ...(opts.since === undefined ? {} : { since: opts.since }),
      };
      const source = await openEventSource(opts);
      let report: ChainReport;
      try {
        report = await withProgress('verifying hash chains', async () =>
          source.kind === 'api'
            ? // The gateway checks with its own chain key, which never leaves it.
              source.api.verifyChains(source.token, scope).catch(explainApiFailure(source))
            : verifyStoredChains(source.store, await chainKeyOf(source.events), scope),
        );
      } finally {
        await closeEventSource(source);
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
