import type { Person } from '@portcullis/core';
import type { PendingApproval } from './approval-broker.js';
import type { LinkVerdict } from './approval-links.js';

/** Escapes text for HTML content and quoted attribute values. */
export function escapeHtml(value: string): string {
  return value
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

/** Headers of every review page: no scripts at all, not framed, the link's query not leaked. */
export const PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

const STYLE =
  'body{font:15px/1.45 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}' +
  'pre{background:#f3f4f6;padding:.75rem;white-space:pre-wrap;word-break:break-word}' +
  'dt{font-weight:600;margin-top:.4rem}dd{margin:0}textarea{width:100%;min-height:4rem}' +
  'button,.button{font:inherit;padding:.4rem 1rem;margin:.6rem .4rem 0 0}' +
  '.error{color:#a40e26;font-weight:600}';

/** A whole page: `title` is escaped here, `body` must already be HTML. */
export function page(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${escapeHtml(title)} · Portcullis</title><style>${STYLE}</style></head>` +
    `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`
  );
}

/** A page that only says `message` (escaped). */
export function messagePage(title: string, message: string): string {
  return page(title, `<p>${escapeHtml(message)}</p>`);
}

/** The page for a link this gateway did not sign, or one that expired. */
export function linkRefusedPage(reason: 'forged' | 'expired' | 'malformed'): string {
  return messagePage(
    'Link refused',
    reason === 'expired'
      ? 'This approval link is stale: it has expired. Ask for the statement to be run again, or decide with the portcullis CLI.'
      : 'This approval link was not issued by this gateway (its signature does not verify).',
  );
}

function personText(p: { subject: string; email: string }): string {
  return p.email === '' ? p.subject : `${p.email} (${p.subject})`;
}

/** The held statement as a definition list: what, where, which rule, who asked, for whom. */
export function approvalDetails(approval: PendingApproval): string {
  const { subject, policy } = approval;
  const rows: [string, string][] = [
    ['Resource', subject.resource],
    ['Kind', subject.kind],
    ['Tables', subject.tables.length === 0 ? '—' : subject.tables.join(', ')],
    ['Rule', subject.rule],
    [
      'Asked by',
      subject.agent === null
        ? personText(subject.person)
        : `agent ${subject.agent.name} (${subject.agent.id})`,
    ],
    ['On behalf of', subject.agent === null ? '—' : personText(subject.person)],
    ['Approvers', `${policy.count} from ${policy.groups.join(', ')}`],
    [
      'Approved so far',
      approval.approvals.length === 0
        ? 'nobody'
        : approval.approvals.map((d) => d.email || d.subject).join(', '),
    ],
    ['Requested', new Date(approval.requestedAt).toISOString()],
    ['Expires', new Date(approval.expiresAt).toISOString()],
  ];
  return (
    `<p>Approval <code>${escapeHtml(approval.id)}</code></p>` +
    `<pre>${escapeHtml(subject.text)}</pre><dl>` +
    rows.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join('') +
    '</dl>'
  );
}

/** What the review page offers below the statement. */
export type ReviewAction =
  /** Not logged in: a link to the identity provider. */
  | { readonly kind: 'login'; readonly authorizationUrl: string }
  /** The IdP could not be reached to start a login. */
  | { readonly kind: 'unavailable' }
  /** Logged in: the confirmation form. */
  | {
      readonly kind: 'confirm';
      readonly person: Person;
      readonly csrf: string;
      readonly exp: number;
      readonly sig: string;
      /** Shown above the form (a reason missing, say). */
      readonly error?: string;
    };

const VERB: Readonly<Record<LinkVerdict, string>> = {
  approve: 'approve',
  deny: 'deny',
  view: 'decide on',
};

/** The review page of `approval` reached through a `verdict` link. */
export function reviewPage(
  approval: PendingApproval,
  verdict: LinkVerdict,
  action: ReviewAction,
): string {
  const title = verdict === 'view' ? 'Held statement' : `${capital(verdict)} a held statement`;
  let tail: string;
  if (action.kind === 'login') {
    tail =
      `<p>Sign in to ${VERB[verdict]} this statement.</p>` +
      `<p><a class="button" href="${escapeHtml(action.authorizationUrl)}">Sign in</a></p>`;
  } else if (action.kind === 'unavailable') {
    tail =
      '<p class="error">The identity provider did not answer, so you cannot sign in now. Reload this page to try again.</p>';
  } else {
    const hidden = (name: string, value: string): string =>
      `<input type="hidden" name="${name}" value="${escapeHtml(value)}">`;
    const reasonRequired = verdict === 'deny' ? ' required' : '';
    const buttons =
      verdict === 'view'
        ? '<button type="submit" name="decision" value="approve">Approve</button>' +
          '<button type="submit" name="decision" value="deny">Deny</button>'
        : `<button type="submit" name="decision" value="${verdict}">${capital(verdict)}</button>`;
    tail =
      `<p>Signed in as ${escapeHtml(personText(action.person))}.</p>` +
      (action.error === undefined ? '' : `<p class="error">${escapeHtml(action.error)}</p>`) +
      // Relative action: the page and its form share a path under any public prefix.
      `<form method="post" action="review">` +
      hidden('verdict', verdict) +
      hidden('exp', String(action.exp)) +
      hidden('sig', action.sig) +
      hidden('csrf', action.csrf) +
      `<label for="reason">Reason${verdict === 'deny' ? '' : ' (needed to deny)'}</label>` +
      `<textarea id="reason" name="reason" maxlength="1000"${reasonRequired}></textarea>` +
      buttons +
      '</form>';
  }
  return page(title, approvalDetails(approval) + tail);
}

/** The page after a decision went through. */
export function decidedPage(
  decision: 'approve' | 'deny',
  state: 'granted' | 'pending' | 'denied',
  approval: PendingApproval,
): string {
  const message =
    state === 'denied'
      ? 'You denied the statement; the session gets an error naming you and your reason.'
      : state === 'granted'
        ? 'You approved the statement; it has been released to run as submitted.'
        : `You approved the statement; it needs ${approval.policy.count - approval.approvals.length} more approval(s) before it runs.`;
  return page(decision === 'deny' ? 'Denied' : 'Approved', `<p>${escapeHtml(message)}</p>`);
}

function capital(word: string): string {
  return word.charAt(0).toUpperCase() + word.slice(1);
}
