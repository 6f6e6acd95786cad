import { Command } from 'commander';
import { isPortcullisError } from '@portcullis/core';
import { isIdentityError, type IdentityError } from '@portcullis/identity';
import { configCommand } from './commands/config-command.js';
import { credentialsCommand } from './commands/credentials-command.js';
import { approvalsCommand, approveCommand, denyCommand } from './commands/approvals-command.js';
import { accessCommand, requestCommand } from './commands/access-command.js';
import { delegateCommand, delegationsCommand, revokeCommand } from './commands/delegate-command.js';
import { demoCommand } from './commands/demo-command.js';
import { eventsCommand } from './commands/events-command.js';
import { ingestCommand } from './commands/ingest-command.js';
import { reviewCommand } from './commands/review-command.js';
import { verifyCommand } from './commands/verify-command.js';
import { loginCommand } from './commands/login-command.js';
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
program.addCommand(reviewCommand());
program.addCommand(verifyCommand());
program.addCommand(ingestCommand());
program.addCommand(configCommand());
program.addCommand(loginCommand());
program.addCommand(credentialsCommand());
program.addCommand(delegateCommand());
program.addCommand(delegationsCommand());
program.addCommand(revokeCommand());
program.addCommand(approvalsCommand());
program.addCommand(approveCommand());
program.addCommand(denyCommand());
program.addCommand(requestCommand());
program.addCommand(accessCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  if (isPortcullisError(err)) {
    console.error(`portcullis: ${err.message} [${err.code}]`);
  } else if (isIdentityError(err)) {
    console.error(`portcullis: ${err.message} [${(err as IdentityError).code}]`);
  } else {
    console.error(`portcullis: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exitCode = 1;
});
