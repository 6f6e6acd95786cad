import { Command, InvalidArgumentError } from 'commander';
import { createLogger, loadConfigFile, runGateway } from '@portcullis/gateway';
import { onShutdown } from './shutdown.js';

/** Parses `--processes N|auto`. */
export function parseProcesses(value: string): number | 'auto' {
  if (value === 'auto') return 'auto';
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InvalidArgumentError('expected a number 1-64 or "auto"');
  return n;
}

/** `portcullis start`: runs the gateway from a configuration file. */
export function startCommand(): Command {
  return new Command('start')
    .description('run the gateway from a configuration file')
    .requiredOption('-c, --config <file>', 'YAML configuration file (see docs/configuration.md)')
    .option(
      '-p, --processes <n>',
      'gateway processes: a number or "auto" (one per core)',
      parseProcesses,
    )
    .option('--data-dir <dir>', 'overrides dataDir from the configuration')
    .action(async (opts: { config: string; processes?: number | 'auto'; dataDir?: string }) => {
      const config = loadConfigFile(
        opts.config,
        process.env,
        opts.dataDir === undefined ? {} : { dataDir: opts.dataDir },
      );
      const processes =
        opts.processes === undefined
          ? config.processes
          : opts.processes === 'auto'
            ? (await import('node:os')).cpus().length
            : opts.processes;
      const logger = createLogger(config.logLevel);
      const running = await runGateway({ ...config, processes }, logger);
      console.log(
        `Portcullis is listening on postgresql://${running.host}:${running.port} (${running.processes} process${running.processes === 1 ? '' : 'es'}); events: ${config.events.path}`,
      );
      if (running.http !== null) {
        console.log(
          `HTTP API on http://${running.http.host}:${running.http.port} (/healthz, /readyz, /metrics)`,
        );
      }
      onShutdown(() => running.close());
    });
}
