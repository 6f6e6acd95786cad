import { Command } from 'commander';
import { ACCESS_REQUEST_PREFIX, personSession } from './access-command.js';
import { clockTime } from './cli-options.js';
import { formatTable } from './format-table.js';
import { GatewayApiError, type ApprovalView } from './gateway-api.js';

const CONFIG_FILE_HELP = 'the credentials file `portcullis login` wrote';

/** Adds what to do to the gateway's refusals. */
function explain(err: unknown): never {
  if (err instanceof GatewayApiError && err.status === 401) {
    throw new Error(
      `the gateway refused your credential (${err.message}); run portcullis login again`,
      { cause: err },
    );
  }
  throw err;
}

function requester(a: ApprovalView): string {
  const who = a.requester.email ?? `${a.requester.name ?? a.requester.agent ?? '?'} (agent)`;
  return a.onBehalfOf === null ? who : `${who} for ${a.onBehalfOf.email}`;
}

/** `portcullis approvals`: statements waiting for your decision. */
export function approvalsCommand(): Command {
  return new Command('approvals')
    .description('list held statements you may approve or deny')
    .option('--json', 'print JSON')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .action(async (opts: { json?: boolean; configFile?: string }) => {
      const { token, api } = await personSession(opts.configFile);
      const list = await api.listApprovals(token).catch(explain);
      if (opts.json === true) {
        console.log(JSON.stringify(list, null, 2));
        return;
      }
      if (list.length === 0) {
        console.log('no statements wait for your decision');
        return;
      }
      const now = Date.now();
      console.log(
        formatTable(
          ['id', 'resource', 'requester', 'rule', 'approvals', 'expires', 'statement'],
          list.map((a) => [
            a.id,
            a.resource,
            requester(a),
            a.rule,
            `${a.approvals.length}/${a.approvalsNeeded}`,
            clockTime(Date.parse(a.expiresAt), now),
            a.statement.text.replace(/\s+/g, ' ').trim(),
          ]),
        ),
      );
    });
}

/** `portcullis approve`: release a held statement. */
export function approveCommand(): Command {
  return new Command('approve')
    .description(
      'approve a held statement (it runs as submitted) or an access request (acr_…: a grant starts), once enough approvers agree',
    )
    .argument(
      '<id>',
      'the approval id (`portcullis approvals`) or access request id (`portcullis access`)',
    )
    .option('--reason <text>', 'why (recorded with the decision)')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .action(async (id: string, opts: { reason?: string; configFile?: string }) => {
      const { token, api } = await personSession(opts.configFile);
      if (id.startsWith(ACCESS_REQUEST_PREFIX)) {
        const request = await api
          .decideAccessRequest(token, id, 'approve', opts.reason)
          .catch(explain);
        console.log(
          request.grant === null
            ? `approved ${request.id}; ${request.approvalsNeeded - request.approvals.length} more approval(s) needed`
            : `approved ${request.id}: ${request.requester.email} may use ${request.resource} until ${clockTime(Date.parse(request.grant.endsAt))} (grant ${request.grant.id})`,
        );
        return;
      }
      const decided = await api.decideApproval(token, id, 'approve', opts.reason).catch(explain);
      console.log(
        decided.state === 'pending'
          ? `approved ${decided.id}; ${decided.approvalsNeeded - decided.approvals.length} more approval(s) needed`
          : `approved ${decided.id}: the statement runs now`,
      );
    });
}

/** `portcullis deny`: refuse a held statement. */
export function denyCommand(): Command {
  return new Command('deny')
    .description(
      'deny a held statement (the client gets 42501 with your reason) or an access request (acr_…)',
    )
    .argument(
      '<id>',
      'the approval id (`portcullis approvals`) or access request id (`portcullis access`)',
    )
    .requiredOption('--reason <text>', 'why (told to the client and recorded)')
    .option('--config-file <path>', CONFIG_FILE_HELP)
    .action(async (id: string, opts: { reason: string; configFile?: string }) => {
      const { token, api } = await personSession(opts.configFile);
      if (id.startsWith(ACCESS_REQUEST_PREFIX)) {
        const request = await api
          .decideAccessRequest(token, id, 'deny', opts.reason)
          .catch(explain);
        console.log(`denied ${request.id}`);
        return;
      }
      const decided = await api.decideApproval(token, id, 'deny', opts.reason).catch(explain);
      console.log(`denied ${decided.id}`);
    });
}
