import type { ApprovalOutcome, Decider, PendingApproval } from './approval-broker.js';

/** Version of the generic payload; bumped only for changes a receiver could trip on. */
export const NOTICE_VERSION = 1;

/** What happened to a held statement. */
export type ApprovalNoticeType =
  | 'approval.requested'
  | 'approval.granted'
  | 'approval.denied'
  | 'approval.expired'
  | 'approval.withdrawn'
  | 'approval.failed';

/** What happened to a request for time-boxed access. */
export type AccessNoticeType =
  | 'access.requested'
  | 'access.granted'
  | 'access.denied'
  | 'access.expired'
  | 'access.withdrawn'
  | 'access.revoked';

/** Signed links to the gateway's review page (only when `approvals.publicUrl` is set). */
export interface NoticeLinks {
  readonly approve: string;
  readonly deny: string;
  readonly view: string;
}

/** The CLI commands that decide the request (always present; the only way without links). */
export interface NoticeCommands {
  readonly approve: string;
  readonly deny: string;
}

/** Who asked: a person running it themselves, or an agent (then `onBehalfOf` names the person). */
export type NoticeRequester =
  | { readonly subject: string; readonly email: string }
  | { readonly agent: string; readonly name: string };

/** How a request ended, in a notice of a settled request. */
export interface NoticeOutcome {
  readonly kind: string;
  readonly by: readonly Decider[];
  readonly reason: string;
}

/** A held statement as notices describe it. */
export interface ApprovalPayload {
  readonly id: string;
  readonly resource: string;
  /** Text as recorded (literals redacted unless the gateway records them). */
  readonly statement: {
    readonly text: string;
    readonly kind: string;
    readonly tables: readonly string[];
  };
  readonly rule: string;
  readonly requester: NoticeRequester;
  readonly onBehalfOf: { readonly subject: string; readonly email: string } | null;
  readonly approverGroups: readonly string[];
  readonly approvalsNeeded: number;
  readonly approvals: readonly Decider[];
  readonly requestedAt: string;
  readonly expiresAt: string;
}

/** A request for time-boxed access as notices describe it. */
export interface AccessPayload {
  readonly id: string;
  readonly resource: string;
  readonly requester: { readonly subject: string; readonly email: string };
  readonly reason: string;
  /** How long the access would last once granted. */
  readonly durationSeconds: number;
  readonly approverGroups: readonly string[];
  readonly approvalsNeeded: number;
  readonly requestedAt: string;
  readonly expiresAt: string;
}

interface NoticeBase {
  readonly version: typeof NOTICE_VERSION;
  readonly occurredAt: string;
  /** Null for a request that has ended, or when the gateway has no public address. */
  readonly links: NoticeLinks | null;
  readonly commands: NoticeCommands;
  /** Null while the request waits. */
  readonly outcome: NoticeOutcome | null;
}

/** The generic webhook body for a held statement. */
export interface ApprovalNotice extends NoticeBase {
  readonly type: ApprovalNoticeType;
  readonly approval: ApprovalPayload;
}

/** The generic webhook body for an access request. */
export interface AccessNotice extends NoticeBase {
  readonly type: AccessNoticeType;
  readonly access: AccessPayload;
}

/** Anything the notifier sends. */
export type Notice = ApprovalNotice | AccessNotice;

/** Commands that decide request `id`: a held statement (`apr_…`) or an access request (`acr_…`). */
export function approvalCommands(id: string): NoticeCommands {
  return { approve: `portcullis approve ${id}`, deny: `portcullis deny ${id} --reason "…"` };
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function outcomeJson(outcome: ApprovalOutcome): NoticeOutcome {
  return {
    kind: outcome.kind,
    by: 'by' in outcome ? outcome.by.map((d) => ({ subject: d.subject, email: d.email })) : [],
    reason: outcome.reason,
  };
}

/**
 * The notice for a held statement: `approval.requested` (with `links`, when there are any) or,
 * with `outcome`, how it ended (no links: there is nothing left to decide).
 */
export function approvalNotice(
  request: PendingApproval,
  options: {
    readonly links: NoticeLinks | null;
    readonly outcome?: ApprovalOutcome;
    readonly now: number;
  },
): ApprovalNotice {
  const { subject, policy } = request;
  const person = { subject: subject.person.subject, email: subject.person.email };
  const outcome = options.outcome;
  return {
    version: NOTICE_VERSION,
    type: outcome === undefined ? 'approval.requested' : `approval.${outcome.kind}`,
    occurredAt: iso(options.now),
    approval: {
      id: request.id,
      resource: subject.resource,
      statement: { text: subject.text, kind: subject.kind, tables: [...subject.tables] },
      rule: subject.rule,
      requester:
        subject.agent === null ? person : { agent: subject.agent.id, name: subject.agent.name },
      onBehalfOf: subject.agent === null ? null : person,
      approverGroups: [...policy.groups],
      approvalsNeeded: policy.count,
      approvals: request.approvals.map((d) => ({ subject: d.subject, email: d.email })),
      requestedAt: iso(request.requestedAt),
      expiresAt: iso(request.expiresAt),
    },
    links: outcome === undefined ? options.links : null,
    commands: approvalCommands(request.id),
    outcome: outcome === undefined ? null : outcomeJson(outcome),
  };
}

/** An access request as its owner hands it to {@link accessNotice} (times as numbers). */
export interface AccessRequestSummary extends Omit<AccessPayload, 'requestedAt' | 'expiresAt'> {
  /** Milliseconds since the epoch. */
  readonly requestedAt: number;
  readonly expiresAt: number;
}

/**
 * The notice for an access request, sent through the same notifier (same signing, retries and
 * Slack rendering) as held statements. `commands` are the CLI's; `links` when the gateway serves
 * a page for them.
 */
export function accessNotice(
  type: AccessNoticeType,
  request: AccessRequestSummary,
  options: {
    readonly commands: NoticeCommands;
    readonly links?: NoticeLinks | null;
    readonly outcome?: NoticeOutcome;
    readonly now: number;
  },
): AccessNotice {
  return {
    version: NOTICE_VERSION,
    type,
    occurredAt: iso(options.now),
    access: {
      id: request.id,
      resource: request.resource,
      requester: { subject: request.requester.subject, email: request.requester.email },
      reason: request.reason,
      durationSeconds: request.durationSeconds,
      approverGroups: [...request.approverGroups],
      approvalsNeeded: request.approvalsNeeded,
      requestedAt: iso(request.requestedAt),
      expiresAt: iso(request.expiresAt),
    },
    links: type === 'access.requested' ? (options.links ?? null) : null,
    commands: options.commands,
    outcome: options.outcome ?? null,
  };
}

// ---- Slack -------------------------------------------------------------------------------

/** Longest statement text put in a Slack message (a section holds at most 3000 characters). */
const SLACK_STATEMENT_CHARS = 1500;

/** Escapes text for Slack mrkdwn: `&`, `<` and `>` are control characters there. */
export function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

/** Text for inside a Slack code span or block: escaped, with no backtick to end it early. */
function slackCode(text: string): string {
  return slackEscape(text).replaceAll('`', 'ˋ');
}

function truncate(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** Slack's date formatting, with the ISO time as the fallback text. */
function slackDate(isoTime: string): string {
  const unix = Math.floor(Date.parse(isoTime) / 1000);
  return `<!date^${unix}^{date_short_pretty} {time}|${isoTime}>`;
}

function who(requester: NoticeRequester, onBehalfOf: ApprovalPayload['onBehalfOf']): string {
  if ('agent' in requester) {
    const person = onBehalfOf === null ? '' : ` for ${onBehalfOf.email || onBehalfOf.subject}`;
    return `${requester.name} (agent ${requester.agent})${person}`;
  }
  return requester.email || requester.subject;
}

const ENDED: Readonly<Record<string, string>> = {
  granted: 'Approved',
  denied: 'Denied',
  expired: 'Expired',
  withdrawn: 'Withdrawn',
  failed: 'Failed',
  revoked: 'Revoked',
};

function endedLine(outcome: NoticeOutcome): string {
  const by = outcome.by.map((d) => d.email || d.subject).join(', ');
  const reason = outcome.reason === '' ? '' : `: ${outcome.reason}`;
  return `*${ENDED[outcome.kind] ?? outcome.kind}*${by === '' ? '' : ` by ${by}`}${reason}`;
}

/** A Slack incoming-webhook message (`text` fallback plus Block Kit blocks) for `notice`. */
export function slackMessage(notice: Notice): {
  text: string;
  blocks: Record<string, unknown>[];
} {
  const e = slackEscape;
  let headline: string;
  let fields: string[];
  let id: string;
  if ('approval' in notice) {
    const a = notice.approval;
    id = a.id;
    const requester = who(a.requester, a.onBehalfOf);
    headline = `${a.statement.kind.toUpperCase()} on ${a.resource} by ${requester}`;
    fields = [
      `*Who:* ${e(requester)}`,
      `*What:* ${e(a.statement.kind.toUpperCase())} on \`${slackCode(a.resource)}\`` +
        (a.statement.tables.length === 0
          ? ''
          : ` (${a.statement.tables.map((t) => `\`${slackCode(t)}\``).join(', ')})`),
      `*Rule:* \`${slackCode(a.rule)}\` · ${a.approvalsNeeded} approval${a.approvalsNeeded === 1 ? '' : 's'} from ${e(a.approverGroups.join(', '))}`,
      `*Expires:* ${slackDate(a.expiresAt)}`,
      '```' + slackCode(truncate(a.statement.text, SLACK_STATEMENT_CHARS)) + '```',
    ];
  } else {
    const r = notice.access;
    id = r.id;
    const requester = r.requester.email || r.requester.subject;
    const hours = Math.round((r.durationSeconds / 3600) * 10) / 10;
    headline = `access to ${r.resource} for ${hours} h by ${requester}`;
    fields = [
      `*Who:* ${e(requester)}`,
      `*What:* access to \`${slackCode(r.resource)}\` for ${hours} h`,
      `*Why:* ${e(truncate(r.reason, SLACK_STATEMENT_CHARS))}`,
      `*Expires:* ${slackDate(r.expiresAt)}`,
    ];
  }
  const waiting = notice.outcome === null;
  const title = waiting
    ? `Approval needed: ${headline}`
    : `${ENDED[notice.outcome.kind] ?? notice.outcome.kind}: ${headline}`;
  const blocks: Record<string, unknown>[] = [
    {
      type: 'section',
      text: {
        type: 'mrkdwn',
        text: [
          waiting ? `*Approval needed* · \`${slackCode(id)}\`` : endedLine(notice.outcome),
          ...fields,
        ].join('\n'),
      },
    },
  ];
  if (waiting && notice.links !== null) {
    blocks.push({
      type: 'actions',
      elements: [
        button('Approve', notice.links.approve, 'primary', `approve:${id}`),
        button('Deny', notice.links.deny, 'danger', `deny:${id}`),
        button('Details', notice.links.view, null, `view:${id}`),
      ],
    });
  } else if (waiting) {
    blocks.push({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: `Decide with \`${slackCode(notice.commands.approve)}\` or \`${slackCode(notice.commands.deny)}\``,
        },
      ],
    });
  }
  return { text: e(truncate(title, 300)), blocks };
}

function button(
  label: string,
  url: string,
  style: 'primary' | 'danger' | null,
  actionId: string,
): Record<string, unknown> {
  return {
    type: 'button',
    text: { type: 'plain_text', text: label },
    url,
    // Unique per message; Slack still posts a click to an app's endpoint, ignored here.
    action_id: actionId.slice(0, 255),
    ...(style === null ? {} : { style }),
  };
}

/** The request body a webhook of `format` receives for `notice`. */
export function deliveryBody(format: 'generic' | 'slack', notice: Notice): string {
  return JSON.stringify(format === 'slack' ? slackMessage(notice) : notice);
}
