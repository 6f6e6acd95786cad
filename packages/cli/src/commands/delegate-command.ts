import { Command } from 'commander';
import { CredentialStore } from '@portcullis/identity';
import { clockTime, durationOption, listOption } from './cli-options.js';
import { formatTable } from './format-table.js';
import { GatewayApi, GatewayApiError, type DelegationView } from './gateway-api.js';
import { formatDuration } from './parse-duration.js';
import {
  credentialsPath,
  freshGatewayCredential,
  loadLogin,
  type CliLogin,
} from './stored-login.js';

const CONFIG_FILE_HELP = 'the credentials file `portcullis login` wrote';

/** The logged-in person's fresh credential and a client of their gateway. */
async function personSession(
  configFile: string | undefined,
): Promise<{ login: CliLogin; api: GatewayApi }> {
  const store = new CredentialStore({ path: credentialsPath(configFile) });
  const login = await freshGatewayCredential(store, await loadLogin(store), {
    onRefresh: (message) => process.stderr.write(`${message}…\n`),
  });
  return { login, api: new GatewayApi(login.gateway.url) };
}

/** Adds what to do to the gateway's refusals of delegation requests. */
function explain(err: unknown): never {
  if (err instanceof GatewayApiError) {
    if (err.status === 401) {
      throw new Error(
        `the gateway refused your credential (${err.message}); run portcullis login again`,
        {
          cause: err,
        },
      );
    }
    if (err.code === 'unknown_agent') {
      throw new Error(`${err.message}; agents are listed in the gateway's identity.agents`, {
        cause: err,
      });
    }
  }
  throw err;
}

function state(d: DelegationView, now: number): string {
  if (d.revokedAt !== null) return 'revoked';
  return Date.parse(d.expiresAt) <= now ? 'expired' : 'active';
}

/** `portcullis delegate`: let an agent act for you on some resources for a while. */
export function delegateCommand(): Command {
  return new Command('delegate')
    .description('let an agent act for you on some resources for a limited time')
    .requiredOption('--agent <id>', "the agent's id (its OAuth client id at the IdP)")
    .requiredOption(
      '--resources <names>',
      'resources the agent may use for you, comma-separated (a,b)',
      listOption,
    )
    .option(
      '--ttl <duration>',
      'how long the delegation lasts, e.g. 30m, 1h, 2d',
      durationOption,
      3_600_000,
    )
    .option('--reason <text>', 'why (recorded with the delegation)')
    .option('--json', 'print the delegation as JSON')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .addHelpText(
      'after',
      `
The agent then exchanges its own IdP token and the delegation id for a credential naming you
and itself (POST /v1/token with actor_token, delegation_id and resource). Revoke it any time
with: portcullis revoke <id>`,
    )
    .action(
      async (opts: {
        agent: string;
        resources: string[];
        ttl: number;
        reason?: string;
        json?: boolean;
        configFile?: string;
      }) => {
        const { login, api } = await personSession(opts.configFile);
        const created = await api
          .createDelegation(login.gateway.token, {
            agent: opts.agent,
            resources: opts.resources,
            ttlMs: opts.ttl,
            ...(opts.reason === undefined ? {} : { reason: opts.reason }),
          })
          .catch(explain);
        if (opts.json === true) {
          console.log(JSON.stringify(created, null, 2));
          return;
        }
        console.log(created.id);
        process.stderr.write(
          `${created.agent} may act for ${created.person.email || created.person.subject} on ` +
            `${created.resources.join(', ')} until ${clockTime(Date.parse(created.expiresAt))} ` +
            `(${formatDuration(Date.parse(created.expiresAt) - Date.now())}).\n` +
            `Give the agent the delegation id above; revoke with: portcullis revoke ${created.id}\n`,
        );
      },
    );
}

/** `portcullis delegations`: the delegations you gave. */
export function delegationsCommand(): Command {
  return new Command('delegations')
    .description('list the delegations you gave to agents (active ones unless --all)')
    .option('--all', 'include revoked and expired delegations')
    .option('--json', 'print JSON')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .action(async (opts: { all?: boolean; json?: boolean; configFile?: string }) => {
      const { login, api } = await personSession(opts.configFile);
      const list = await api
        .listDelegations(login.gateway.token, { all: opts.all === true })
        .catch(explain);
      if (opts.json === true) {
        console.log(JSON.stringify(list, null, 2));
        return;
      }
      if (list.length === 0) {
        console.log(
          opts.all === true ? 'no delegations' : 'no active delegations (--all shows ended ones)',
        );
        return;
      }
      const now = Date.now();
      console.log(
        formatTable(
          ['id', 'agent', 'resources', 'state', 'expires', 'reason'],
          list.map((d) => [
            d.id,
            d.agent,
            d.resources.join(','),
            state(d, now),
            clockTime(Date.parse(d.expiresAt), now),
            d.reason ?? '',
          ]),
        ),
      );
    });
}

/** `portcullis revoke`: end a delegation at once. */
export function revokeCommand(): Command {
  return new Command('revoke')
    .description('revoke a delegation: credentials obtained with it stop working at once')
    .argument(
      '<delegation-id>',
      'the id `portcullis delegate` printed (see `portcullis delegations`)',
    )
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .action(async (id: string, opts: { configFile?: string }) => {
      const { login, api } = await personSession(opts.configFile);
      const revoked = await api.revokeDelegation(login.gateway.token, id).catch(explain);
      console.log(`revoked ${revoked.id} (${revoked.agent} on ${revoked.resources.join(', ')})`);
    });
}
