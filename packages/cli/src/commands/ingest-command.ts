import { Command, InvalidArgumentError, Option } from 'commander';
import { ClickHouseSink, KafkaIngester, type ClickHouseSchemaFlavour } from '@portcullis/events';
import { createLogger } from '@portcullis/gateway';
import { httpUrlOption } from './cli-options.js';
import { onShutdown } from './shutdown.js';

interface IngestOptions {
  brokers: string[];
  topic: string;
  group: string;
  clickhouseUrl: string;
  table: string;
  schema: ClickHouseSchemaFlavour;
  username?: string;
  passwordEnv?: string;
  database?: string;
  batchRows: number;
  batchMs: number;
  sessionTimeoutMs: number;
  deadLetterDir: string;
  progressMs: number;
  logLevel: string;
}

function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1 || n > max) {
      throw new InvalidArgumentError(`expected a whole number from 1 to ${max.toLocaleString()}`);
    }
    return n;
  };
}

function brokerList(value: string): string[] {
  const brokers = value
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b !== '');
  if (brokers.length === 0 || brokers.some((b) => !/^[^\s:]+:\d{1,5}$/.test(b))) {
    throw new InvalidArgumentError('expected host:port[,host:port…]');
  }
  return brokers;
}

/**
 * `portcullis ingest`: a Kafka consumer group member that stores the gateway's events from the
 * events topic in a ClickHouse table, committing offsets only after the insert succeeded.
 */
export function ingestCommand(): Command {
  return new Command('ingest')
    .description(
      'read session events from Kafka (the gateway Kafka sink topic) and store them in ClickHouse; ' +
        'run several with the same --group to split the partitions',
    )
    .requiredOption('--brokers <list>', 'Kafka brokers, host:port[,host:port…]', brokerList)
    .option('--topic <name>', 'the events topic', 'portcullis.events')
    .option(
      '--group <id>',
      'consumer group (ingesters in one group share the work)',
      'portcullis-ingest',
    )
    .requiredOption(
      '--clickhouse-url <url>',
      'ClickHouse HTTP address, e.g. http://127.0.0.1:8123',
      httpUrlOption,
    )
    .option('--table <name>', 'target table ([database.]table)', 'events')
    .addOption(
      new Option(
        '--schema <flavour>',
        'table layout: modern (ClickHouse 22.3+) or legacy18 (18.16+)',
      )
        .choices(['modern', 'legacy18'])
        .default('modern'),
    )
    .option('--username <name>', 'ClickHouse user')
    .option('--password-env <VAR>', 'environment variable holding the ClickHouse password')
    .option('--database <name>', 'ClickHouse database (default: the user’s)')
    .option('--batch-rows <n>', 'most events in one insert', positiveInt(1_000_000), 10_000)
    .option(
      '--batch-ms <ms>',
      'longest wait for a partition batch to fill under light traffic',
      positiveInt(60_000),
      1_000,
    )
    .option(
      '--session-timeout-ms <ms>',
      'group session timeout: how soon the partitions of a crashed ingester move on',
      positiveInt(300_000),
      30_000,
    )
    .option(
      '--dead-letter-dir <dir>',
      'where messages that are not events and rows ClickHouse refuses are written',
      './.portcullis/dead-letter',
    )
    .option(
      '--progress-ms <ms>',
      'interval of the progress line (stderr)',
      positiveInt(3_600_000),
      10_000,
    )
    .addOption(
      new Option('--log-level <level>', 'log level (JSON lines on stderr)')
        .choices(['debug', 'info', 'warn', 'error'])
        .default('warn'),
    )
    .addHelpText(
      'after',
      `
Offsets are committed only after an insert succeeded: after a crash the next ingester reads the
uncommitted messages again and the table keeps one row per event id. Only native-format events
are stored; OCSF messages are skipped and counted, other messages go to the dead-letter file.

Example:
  CLICKHOUSE_PASSWORD=… portcullis ingest --brokers kafka-1:9092,kafka-2:9092 \\
    --clickhouse-url https://clickhouse:8443 --username ingest --password-env CLICKHOUSE_PASSWORD`,
    )
    .action(async (opts: IngestOptions) => {
      let password: string | undefined;
      if (opts.passwordEnv !== undefined) {
        password = process.env[opts.passwordEnv];
        if (password === undefined) {
          throw new InvalidArgumentError(`environment variable ${opts.passwordEnv} is not set`);
        }
      }
      const logger = createLogger(opts.logLevel);
      const sink = new ClickHouseSink({
        name: 'ingest',
        url: opts.clickhouseUrl,
        table: opts.table,
        schema: opts.schema,
        deadLetterDir: opts.deadLetterDir,
        maxInsertRows: opts.batchRows,
        logger,
        ...(opts.username === undefined ? {} : { username: opts.username }),
        ...(password === undefined ? {} : { password }),
        ...(opts.database === undefined ? {} : { database: opts.database }),
      });
      const ingester = new KafkaIngester({
        brokers: opts.brokers,
        topic: opts.topic,
        groupId: opts.group,
        sink,
        batchRows: opts.batchRows,
        batchMs: opts.batchMs,
        sessionTimeoutMs: opts.sessionTimeoutMs,
        logger,
      });
      await sink.ensureTable();
      await ingester.start();
      console.error(
        `portcullis: ingesting ${opts.topic} (group ${opts.group}) into ${opts.table} at ${opts.clickhouseUrl}`,
      );

      let last = { at: Date.now(), stored: 0 };
      const progress = setInterval(() => {
        const s = ingester.stats;
        const now = Date.now();
        const rate = ((s.stored - last.stored) * 1000) / Math.max(1, now - last.at);
        last = { at: now, stored: s.stored };
        console.error(
          `ingest: ${s.stored} events stored (${Math.round(rate)}/s), lag ${s.lag}, ` +
            `${s.partitions} partition(s), ${s.skippedOcsf} OCSF skipped, ` +
            `${s.deadLettered} dead-lettered, ${s.failedInserts} failed inserts retried`,
        );
      }, opts.progressMs);
      progress.unref();

      const stop = async (): Promise<void> => {
        clearInterval(progress);
        await ingester.stop();
        await sink.close();
        const s = ingester.stats;
        console.error(`portcullis: stopped after storing ${s.stored} events`);
      };
      onShutdown(stop);
      try {
        await ingester.failed();
      } catch (error) {
        clearInterval(progress);
        await sink.close().catch(() => {});
        throw error;
      }
    });
}
