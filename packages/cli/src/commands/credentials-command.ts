import { Command, Option } from 'commander';
import { CredentialStore } from '@portcullis/identity';
import { clockTime, portOption, sslmodeOption } from './cli-options.js';
import { envLines, pgpassLine, postgresUrl, type ConnectionTarget } from './connection-strings.js';
import { readCredentialClaims } from './credential-claims.js';
import { credentialsPath, freshGatewayCredential, loadLogin } from './stored-login.js';

type CredentialsFormat = 'url' | 'pgpass' | 'env' | 'token';

interface CredentialsOptions {
  resource?: string;
  format: CredentialsFormat;
  pgHost?: string;
  pgPort?: number;
  sslmode?: string;
  user?: string;
  configFile?: string;
}

/** `portcullis credentials`: the stored gateway credential, renewed when needed, for a tool. */
export function credentialsCommand(): Command {
  return new Command('credentials')
    .description(
      'print a connection string with a fresh gateway credential (renewed when it has expired)',
    )
    .option('-r, --resource <name>', 'the resource (database name) to connect to')
    .addOption(
      new Option('-f, --format <format>', 'what to print')
        .choices(['url', 'pgpass', 'env', 'token'])
        .default('url'),
    )
    .option('--pg-host <host>', "the gateway's PostgreSQL host (default: as given at login)")
    .option(
      '--pg-port <port>',
      "the gateway's PostgreSQL port (default: as given at login)",
      portOption,
    )
    .option('--sslmode <mode>', 'add sslmode to the URL or env lines', sslmodeOption)
    .option(
      '--user <name>',
      'user name in the URL; the gateway goes by the credential (default: your subject)',
    )
    .option('--config-file <path>', 'the credentials file `portcullis login` wrote')
    .addHelpText(
      'after',
      `
Formats:
  url     postgresql://user:credential@host:port/resource  (psql "$(portcullis credentials -r orders)")
  pgpass  a ~/.pgpass line (host:port:resource:user:credential)
  env     export PGHOST=… PGPORT=… PGDATABASE=… PGUSER=… PGPASSWORD=…  (eval "$(portcullis credentials -f env -r orders)")
  token   the credential alone, for a client's password field

The credential is short-lived (minutes): ask again when a tool says it has expired.`,
    )
    .action(async (opts: CredentialsOptions) => {
      const store = new CredentialStore({ path: credentialsPath(opts.configFile) });
      const login = await freshGatewayCredential(store, await loadLogin(store), {
        onRefresh: (message) => process.stderr.write(`${message}…\n`),
      });
      const token = login.gateway.token;
      const claims = readCredentialClaims(token);
      if (opts.format === 'token') {
        console.log(token);
      } else {
        const database = opts.resource ?? login.defaultResource;
        if (database === undefined) {
          throw new Error(
            'name the resource to connect to: portcullis credentials --resource <name> (or log in with --resource <name>)',
          );
        }
        const sslmode = opts.sslmode ?? login.sslmode;
        const target: ConnectionTarget = {
          host: opts.pgHost ?? login.postgres.host,
          port: opts.pgPort ?? login.postgres.port,
          database,
          user: opts.user ?? claims?.subject ?? 'portcullis',
          password: token,
          ...(sslmode === undefined ? {} : { sslmode }),
        };
        console.log(
          opts.format === 'pgpass'
            ? pgpassLine(target)
            : opts.format === 'env'
              ? envLines(target)
              : postgresUrl(target),
        );
      }
      process.stderr.write(
        `valid until ${clockTime(login.gateway.expiresAt)}; run portcullis credentials again for a fresh one\n`,
      );
    });
}
