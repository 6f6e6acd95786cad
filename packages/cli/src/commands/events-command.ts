import { Command, InvalidArgumentError, Option } from 'commander';
import type { SessionEvent } from '@portcullis/core';
import { eventStoreExists, readEvents, readStoredEvents } from '@portcullis/gateway';
import { httpUrlOption } from './cli-options.js';
import {
  CONFIG_FILE_OPTION_HELP,
  GATEWAY_OPTION_HELP,
  StoreHeldError,
  closeEventSource,
  explainApiFailure,
  openEventSource,
} from './event-source.js';
import { eventsConfigOf, withProgress } from './events-config.js';
import { formatTable } from './format-table.js';

interface EventsOptions {
  dataDir: string;
  config?: string;
  file?: string;
  format: 'table' | 'json';
  session?: string;
  type?: string;
  person?: string;
  last: number;
  gateway?: string;
  configFile?: string;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InvalidArgumentError('expected a positive whole number');
  return n;
}

/** `portcullis events`: prints recorded session events. */
export function eventsCommand(): Command {
  return new Command('events')
    .description(
      'print recorded session events, oldest first, from the event store (or the JSONL file)',
    )
    .option('--data-dir <dir>', 'data directory of the gateway', './.portcullis')
    .option(
      '-c, --config <file>',
      'read the store and event file locations from this configuration',
    )
    .option(
      '--file <path>',
      'JSONL event file to read (overrides the store, --data-dir and --config)',
    )
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['table', 'json'])
        .default('table'),
    )
    .option('-s, --session <id>', 'only this session (a full id or its first 8 characters)')
    .option('-t, --type <type>', 'only this event type (session.start, statement, session.end)')
    .option('--person <subject-or-email>', 'only sessions of this person')
    .option('-n, --last <n>', 'only the last N events', positiveInt, 50)
    .option('--gateway <url>', GATEWAY_OPTION_HELP, httpUrlOption)
    .option('--config-file <path>', CONFIG_FILE_OPTION_HELP)
    .action(async (opts: EventsOptions) => {
      let selected: SessionEvent[] | null = null;
      let source: string;
      let unreadable = 0;
      const events = opts.file === undefined ? eventsConfigOf(opts) : null;
      const filters = {
        ...(opts.session === undefined ? {} : { sessionPrefix: opts.session }),
        ...(opts.type === undefined ? {} : { type: opts.type }),
        ...(opts.person === undefined ? {} : { person: opts.person }),
        last: opts.last,
      };
      if (events !== null && (opts.gateway !== undefined || eventStoreExists(events))) {
        // The embedded store, when there is one; while a gateway holds it, its API; when that
        // cannot be used (no login, unreachable, not a reader), the JSONL file.
        try {
          const reader = await openEventSource(opts);
          try {
            source = reader.kind === 'api' ? reader.api.baseUrl : events.store!.dir;
            selected = await withProgress('reading the event store', () =>
              reader.kind === 'api'
                ? reader.api.storedEvents(reader.token, filters).catch(explainApiFailure(reader))
                : readStoredEvents(reader.store, filters),
            );
          } catch (err) {
            if (opts.gateway !== undefined || reader.kind !== 'api') throw err;
            throw new StoreHeldError((err as Error).message, { cause: err });
          } finally {
            await closeEventSource(reader);
          }
        } catch (err) {
          if (!(err instanceof StoreHeldError) || events.file === null) throw err;
          console.error(`portcullis: ${err.message}`);
          console.error(`portcullis: reading ${events.file.path} instead`);
        }
      }
      if (selected === null) {
        const path = opts.file ?? events!.path;
        source = path;
        const read = await readEvents(path, {
          ...(opts.type === undefined ? {} : { type: opts.type }),
          ...(opts.person === undefined ? {} : { person: opts.person }),
          last: opts.session === undefined ? opts.last : Number.MAX_SAFE_INTEGER,
        });
        unreadable = read.unreadable;
        selected =
          opts.session === undefined
            ? read.events
            : read.events.filter((e) => e.sessionId.startsWith(opts.session!)).slice(-opts.last);
      }
      if (opts.format === 'json') {
        for (const event of selected) process.stdout.write(`${JSON.stringify(event)}\n`);
      } else if (selected.length === 0) {
        console.log(`no events recorded in ${source!} match`);
      } else {
        console.log(
          formatTable(
            ['time', 'session', 'seq', 'person', 'type', 'resource', 'detail'],
            selected.map(eventRow),
          ),
        );
      }
      if (unreadable > 0)
        console.error(`portcullis: skipped ${unreadable} unreadable line(s) in ${source!}`);
    });
}

function eventRow(event: SessionEvent): string[] {
  const time = new Date(Math.floor(event.timeUs / 1000))
    .toISOString()
    .replace('T', ' ')
    .slice(0, 23);
  const who =
    event.agent === null ? event.person.email : `${event.person.email} via ${event.agent.name}`;
  return [
    time,
    event.sessionId.slice(0, 8),
    String(event.seq),
    who,
    event.type,
    event.resource,
    detail(event),
  ];
}

function detail(event: SessionEvent): string {
  if (event.statement !== undefined) {
    const s = event.statement;
    const outcome =
      s.verdict !== undefined && s.verdict !== 'allow'
        ? `${s.verdict === 'block' ? 'BLOCKED' : 'HELD'} by ${s.rule}`
        : s.error === null
          ? `${s.tag || 'ok'}`
          : `ERROR ${s.error.code}`;
    const text = s.text.replace(/\s+/g, ' ').trim();
    const masked =
      s.masked === undefined || s.masked.values === 0
        ? ''
        : ` · ${s.masked.values} masked (${s.masked.columns.join(', ')})`;
    return `${outcome} · ${s.rows} rows${masked} · ${(s.durationUs / 1000).toFixed(2)} ms · ${s.protocol} · ${truncate(text, 60)}`;
  }
  if (event.summary !== undefined) {
    const s = event.summary;
    return `${s.reason} · ${s.statements} statements · ${(s.durationUs / 1e6).toFixed(1)} s`;
  }
  if (event.approvalDecision !== undefined) {
    const d = event.approvalDecision;
    const who = d.by.length === 0 ? '' : ` by ${d.by.map((p) => p.email).join(', ')}`;
    const why = d.reason === '' ? '' : ` · ${truncate(d.reason, 60)}`;
    return `${event.type.slice('approval.'.length)} ${d.id}${who}${why}`;
  }
  if (event.approval !== undefined)
    return `approval needed (${event.approval.rule}) · ${truncate(event.approval.text, 60)}`;
  const c = event.client;
  return `from ${c.address}${c.application === '' ? '' : ` (${c.application})`}${c.tls ? ' TLS' : ''} as ${event.upstreamUser}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
