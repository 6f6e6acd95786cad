import { Command, InvalidArgumentError, Option } from 'commander';
import { CredentialStore } from '@portcullis/identity';
import { clockTime, durationOption } from './cli-options.js';
import { formatTable } from './format-table.js';
import {
  GatewayApi,
  GatewayApiError,
  type AccessGrantView,
  type AccessPersonView,
  type AccessRequestView,
} from './gateway-api.js';
import { formatDuration } from './parse-duration.js';
import { credentialsPath, freshGatewayCredential, loadLogin } from './stored-login.js';

const CONFIG_FILE_HELP = 'the credentials file `portcullis login` wrote';

/** Access request ids start with this (held statements' approvals with `apr_`). */
export const ACCESS_REQUEST_PREFIX = 'acr_';

/** The logged-in person's fresh credential and a client of their gateway. */
export async function personSession(
  configFile: string | undefined,
): Promise<{ token: string; api: GatewayApi }> {
  const store = new CredentialStore({ path: credentialsPath(configFile) });
  const login = await freshGatewayCredential(store, await loadLogin(store), {
    onRefresh: (message) => process.stderr.write(`${message}…\n`),
  });
  return { token: login.gateway.token, api: new GatewayApi(login.gateway.url) };
}

/** Adds what to do to the gateway's refusals. */
function explain(err: unknown): never {
  if (err instanceof GatewayApiError) {
    if (err.status === 401) {
      throw new Error(
        `the gateway refused your credential (${err.message}); run portcullis login again`,
        { cause: err },
      );
    }
    if (err.status === 404 && err.code === 'not_found' && err.message.startsWith('no API')) {
      throw new Error(
        'this gateway does not take access requests (no resource has accessRequests)',
        {
          cause: err,
        },
      );
    }
  }
  throw err;
}

const who = (people: readonly AccessPersonView[]): string =>
  people.map((p) => p.email || p.subject).join(', ') || '-';

/** `1h30m` from a request's minutes. */
const length = (minutes: number): string => formatDuration(minutes * 60_000);

function progress(r: AccessRequestView): string {
  return `waiting for a decision on ${r.id} (${r.approvals.length}/${r.approvalsNeeded} approvals; expires ${clockTime(Date.parse(r.expiresAt))})`;
}

/** commander parser for a positive poll interval. */
function intervalOption(value: string): number {
  const ms = durationOption(value);
  if (ms > 60_000) throw new InvalidArgumentError('at most 1m');
  return ms;
}

/** `portcullis request`: ask for time-boxed access to a resource. */
export function requestCommand(): Command {
  return new Command('request')
    .description('ask for time-boxed access to a resource you cannot use now')
    .argument('<resource>', 'the resource (the database name you connect to)')
    .addOption(
      new Option(
        '--for <duration>',
        'how long you need it, e.g. 90s, 30m, 2h (at most the resource’s maxHours)',
      )
        .argParser(durationOption)
        .default(3_600_000, '1h'),
    )
    .requiredOption('--reason <text>', 'why you need it (approvers see it; recorded)')
    .option('--no-wait', 'print the request id and return without waiting for the decision')
    .addOption(
      new Option('--poll-interval <duration>', 'how often to check for the decision')
        .argParser(intervalOption)
        .default(2_000, '2s'),
    )
    .option('--json', 'print the request (and its grant) as JSON')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .addHelpText(
      'after',
      `
The request id (acr_…) goes to stdout. Approvers decide with portcullis approve <id> or
portcullis deny <id> --reason …; without --no-wait this command waits and exits 0 once access
is granted, 1 when it is denied or expires. The grant starts when it is approved and ends by
itself: sessions get a NOTICE shortly before the end and are closed at the end. See your
grants and requests with portcullis access.`,
    )
    .action(
      async (
        resource: string,
        opts: {
          for: number;
          reason: string;
          wait: boolean;
          pollInterval: number;
          json?: boolean;
          configFile?: string;
        },
      ) => {
        const { token, api } = await personSession(opts.configFile);
        let request = await api
          .requestAccess(token, { resource, minutes: opts.for / 60_000, reason: opts.reason })
          .catch(explain);
        console.log(opts.json === true ? JSON.stringify(request, null, 2) : request.id);
        if (!opts.wait) {
          process.stderr.write(
            `asked for ${length(request.minutes)} on ${resource}; approvers decide with: portcullis approve ${request.id}\n`,
          );
          return;
        }
        let shown = '';
        while (request.state === 'pending') {
          const line = progress(request);
          if (line !== shown) process.stderr.write(`${line}…\n`);
          shown = line;
          await new Promise((resolve) => setTimeout(resolve, opts.pollInterval));
          // The stored credential may expire while waiting: renewed on each check.
          const session = await personSession(opts.configFile);
          request = await session.api.accessRequest(session.token, request.id).catch(explain);
        }
        if (opts.json === true) console.log(JSON.stringify(request, null, 2));
        if (request.state === 'approved' && request.grant !== null) {
          const g = request.grant;
          process.stderr.write(
            `granted by ${who(g.approvers)}: ${resource} until ${clockTime(Date.parse(g.endsAt))} ` +
              `(${formatDuration(Date.parse(g.endsAt) - Date.now())}). Connect with: ` +
              `portcullis credentials --resource ${resource}\n`,
          );
          return;
        }
        if (request.state === 'denied') {
          throw new Error(
            `denied by ${who(request.deniedBy === null ? [] : [request.deniedBy])}${request.decisionReason === null ? '' : `: ${request.decisionReason}`}`,
          );
        }
        throw new Error(`request ${request.id} ${request.state} without access`);
      },
    );
}

function grantRows(grants: readonly AccessGrantView[], now: number): string[][] {
  return grants.map((g) => [
    g.id,
    g.resource,
    g.grantee.email || g.grantee.subject,
    g.state,
    g.state === 'active'
      ? `${clockTime(Date.parse(g.endsAt), now)} (${formatDuration(Date.parse(g.endsAt) - now)})`
      : clockTime(Date.parse(g.revokedAt ?? g.endsAt), now),
    who(g.approvers),
    g.reason,
  ]);
}

function requestRows(requests: readonly AccessRequestView[], now: number): string[][] {
  return requests.map((r) => [
    r.id,
    r.resource,
    r.requester.email || r.requester.subject,
    length(r.minutes),
    r.state,
    `${r.approvals.length}/${r.approvalsNeeded}`,
    r.state === 'pending' ? clockTime(Date.parse(r.expiresAt), now) : '-',
    r.reason,
  ]);
}

/** `portcullis access`: my grants and requests; approvers also see what waits for them. */
export function accessCommand(): Command {
  return new Command('access')
    .description('list your access grants and requests (approvers: the requests waiting for you)')
    .option('--all', 'include ended and revoked grants')
    .option('--end <grant-id>', 'end a grant early (yours, or any on a resource you approve for)')
    .option('--reason <text>', 'with --end: why (recorded)')
    .option('--json', 'print JSON')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .addHelpText(
      'after',
      `
Approve or deny a waiting request with portcullis approve <acr_…> / portcullis deny <acr_…>
--reason …. Ending a grant closes its sessions on every gateway at once.`,
    )
    .action(
      async (opts: {
        all?: boolean;
        end?: string;
        reason?: string;
        json?: boolean;
        configFile?: string;
      }) => {
        const { token, api } = await personSession(opts.configFile);
        if (opts.end !== undefined) {
          const ended = await api.endAccessGrant(token, opts.end, opts.reason).catch(explain);
          console.log(
            opts.json === true
              ? JSON.stringify(ended, null, 2)
              : `ended ${ended.id}: access of ${ended.grantee.email} to ${ended.resource}`,
          );
          return;
        }
        const [grants, requests] = await Promise.all([
          api.listAccessGrants(token, { all: opts.all === true }),
          api.listAccessRequests(token),
        ]).catch(explain);
        if (opts.json === true) {
          console.log(JSON.stringify({ grants, ...requests }, null, 2));
          return;
        }
        const now = Date.now();
        const sections: string[] = [];
        sections.push(
          grants.length === 0
            ? 'no access grants'
            : `grants\n${formatTable(['id', 'resource', 'person', 'state', 'ends', 'approved by', 'reason'], grantRows(grants, now))}`,
        );
        const header = [
          'id',
          'resource',
          'requester',
          'for',
          'state',
          'approvals',
          'expires',
          'reason',
        ];
        if (requests.mine.length > 0) {
          sections.push(`your requests\n${formatTable(header, requestRows(requests.mine, now))}`);
        }
        if (requests.toDecide.length > 0) {
          sections.push(
            `waiting for your decision (portcullis approve|deny <id>)\n${formatTable(header, requestRows(requests.toDecide, now))}`,
          );
        }
        console.log(sections.join('\n\n'));
      },
    );
}
