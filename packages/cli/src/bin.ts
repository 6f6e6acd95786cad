import { Command } from 'commander';
import { isPortcullisError } from '@portcullis/core';
import { configCommand } from './commands/config-command.js';
import { demoCommand } from './commands/demo-command.js';
import { eventsCommand } from './commands/events-command.js';
import { startCommand } from './commands/start-command.js';

const program = new Command('portcullis')
  .description(
    'Identity-aware access gateway: every statement recorded against the person behind it.',
  )
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)');

program.addCommand(demoCommand());
program.addCommand(startCommand());
program.addCommand(eventsCommand());
program.addCommand(configCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isPortcullisError(err)) {
    console.error(`portcullis: ${err.message} [${err.code}]`);
  } else {
    console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exitCode = 1;
});
