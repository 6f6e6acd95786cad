import { Command, InvalidArgumentError, Option } from 'commander';
import type { BoundQuery } from '@portcullis/events';
import { loadConfigFile, reviewQuery, staticGrants } from '@portcullis/gateway';
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

interface ReviewOptions {
  dataDir: string;
  config?: string;
  format: 'table' | 'csv' | 'json';
  days: number;
  person?: string;
  gateway?: string;
  configFile?: string;
}

/** The reports, as `portcullis review <report>` names them. */
export const REVIEW_REPORTS = {
  activity: 'activity per person and resource',
  agents: 'what each agent did, and for whom',
  writes: 'writes and DDL, by person (--person for one)',
  blocked: 'statements blocked or held for review',
  approvals: 'held statements: outcome, who decided, why, how long they waited',
  unused: "access (from --config; through the API, the gateway's own) unused for --days",
  sessions: 'the sessions of --person with their statements',
} as const;

type ReportName = keyof typeof REVIEW_REPORTS;

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/** `portcullis review <report>`: runs an access review against the embedded event store. */
export function reviewCommand(): Command {
  return new Command('review')
    .description(
      `run an access review on the event store (through the gateway's API while it runs); reports:\n${Object.entries(
        REVIEW_REPORTS,
      )
        .map(([name, what]) => `  ${name.padEnd(9)} ${what}`)
        .join('\n')}`,
    )
    .addArgument(
      new Command().createArgument('<report>', 'the report').choices(Object.keys(REVIEW_REPORTS)),
    )
    .option('--data-dir <dir>', 'data directory of the gateway', './.portcullis')
    .option('-c, --config <file>', 'the gateway configuration (store location; grants for unused)')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'csv', 'json'])
        .default('table'),
    )
    .option('--days <n>', 'the last N days (whole UTC days for totals)', positiveInt, 30)
    .option('--person <subject>', 'one person (required by sessions)')
    .option('--gateway <url>', GATEWAY_OPTION_HELP, httpUrlOption)
    .option('--config-file <path>', CONFIG_FILE_OPTION_HELP)
    .action(async (report: ReportName, opts: ReviewOptions) => {
      if (report === 'sessions' && opts.person === undefined) {
        throw new InvalidArgumentError('the sessions report needs --person <subject>');
      }
      const source = await openEventSource(opts);
      let rows: Record<string, unknown>[];
      try {
        rows = await withProgress(`running the ${report} review`, () =>
          source.kind === 'api'
            ? // The gateway runs the same query, with the access from its own configuration.
              source.api
                .review(source.token, report, { days: opts.days, person: opts.person })
                .catch(explainApiFailure(source))
            : source.store.run<Record<string, unknown>>(storeQuery(report, opts)),
        );
      } finally {
        await closeEventSource(source);
      }
      process.stdout.write(formatRows(rows, opts.format));
    });
}

/** The report's query for reading the store here: the one the gateway's API runs. */
function storeQuery(report: ReportName, opts: ReviewOptions): BoundQuery {
  if (report === 'unused' && opts.config === undefined) {
    throw new InvalidArgumentError(
      'the unused report needs --config: the access people were given comes from it',
    );
  }
  const grants = report === 'unused' ? staticGrants(loadConfigFile(opts.config!, process.env)) : [];
  return reviewQuery(
    { report, days: opts.days, ...(opts.person === undefined ? {} : { person: opts.person }) },
    new Date(),
    grants,
  );
}

/** Rows as a table, CSV (RFC 4180) or JSON lines; each ends with a newline. */
export function formatRows(rows: readonly Record<string, unknown>[], format: string): string {
  if (format === 'json') return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
  const header = rows.length === 0 ? [] : Object.keys(rows[0]!);
  const cell = (value: unknown): string =>
    value === null || value === undefined
      ? ''
      : Array.isArray(value)
        ? value.join(' ')
        : String(value);
  if (format === 'csv') {
    const quote = (text: string): string =>
      /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
    return [header, ...rows.map((r) => header.map((h) => cell(r[h])))]
      .map((line) => `${line.map(quote).join(',')}\r\n`)
      .join('');
  }
  if (rows.length === 0) return 'no rows\n';
  const oneLine = (text: string): string => {
    const flat = text.replace(/\s+/g, ' ').trim();
    return flat.length <= 80 ? flat : `${flat.slice(0, 79)}…`;
  };
  return `${formatTable(
    header,
    rows.map((r) => header.map((h) => oneLine(cell(r[h])))),
  )}\n`;
}
