import { describe, expect, it } from 'vitest';
import type { PendingApproval } from './approval-broker.js';
import {
  accessNotice,
  approvalNotice,
  deliveryBody,
  slackEscape,
  slackMessage,
} from './approval-messages.js';

const requestedAt = Date.parse('2030-01-01T12:00:00Z');
const request: PendingApproval = {
  id: 'apr_1',
  subject: {
    sessionId: 's1',
    resource: 'shop',
    person: { subject: 'alice', email: 'alice@example.com', groups: ['eng'] },
    agent: { id: 'report-bot', name: 'Report bot' },
    text: 'DELETE FROM orders WHERE note = "<b>```x```</b>" AND id = $1',
    kind: 'delete',
    tables: ['public.orders'],
    rule: 'deletes-need-approval',
    message: 'held',
  },
  policy: { groups: ['dba', 'oncall'], count: 2, timeoutSeconds: 300, allowSelfApproval: false },
  requestedAt,
  expiresAt: requestedAt + 300_000,
  approvals: [],
};
const links = {
  approve: 'https://gw/v1/approvals/apr_1/review?verdict=approve&exp=1&sig=a',
  deny: 'https://gw/v1/approvals/apr_1/review?verdict=deny&exp=1&sig=b',
  view: 'https://gw/v1/approvals/apr_1/review?verdict=view&exp=1&sig=c',
};

describe('generic notices', () => {
  it('describe a held statement: versioned, who, what, rule, links and commands', () => {
    const notice = approvalNotice(request, { links, now: requestedAt });
    expect(JSON.parse(deliveryBody('generic', notice))).toEqual({
      version: 1,
      type: 'approval.requested',
      occurredAt: '2030-01-01T12:00:00.000Z',
      approval: {
        id: 'apr_1',
        resource: 'shop',
        statement: { text: request.subject.text, kind: 'delete', tables: ['public.orders'] },
        rule: 'deletes-need-approval',
        requester: { agent: 'report-bot', name: 'Report bot' },
        onBehalfOf: { subject: 'alice', email: 'alice@example.com' },
        approverGroups: ['dba', 'oncall'],
        approvalsNeeded: 2,
        approvals: [],
        requestedAt: '2030-01-01T12:00:00.000Z',
        expiresAt: '2030-01-01T12:05:00.000Z',
      },
      links,
      commands: { approve: 'portcullis approve apr_1', deny: 'portcullis deny apr_1 --reason "…"' },
      outcome: null,
    });
  });

  it('name a person requester directly, and carry no links without a public address', () => {
    const own = { ...request, subject: { ...request.subject, agent: null } };
    const notice = approvalNotice(own, { links: null, now: requestedAt });
    expect(notice.approval.requester).toEqual({ subject: 'alice', email: 'alice@example.com' });
    expect(notice.approval.onBehalfOf).toBeNull();
    expect(notice.links).toBeNull();
  });

  it('say how a request ended, without links', () => {
    const notice = approvalNotice(request, {
      links,
      outcome: { kind: 'denied', by: [{ subject: 'bob', email: 'bob@example.com' }], reason: 'no' },
      now: requestedAt + 1000,
    });
    expect(notice.type).toBe('approval.denied');
    expect(notice.links).toBeNull();
    expect(notice.outcome).toEqual({
      kind: 'denied',
      by: [{ subject: 'bob', email: 'bob@example.com' }],
      reason: 'no',
    });
    const expired = approvalNotice(request, {
      links: null,
      outcome: { kind: 'expired', reason: 'no decision within 300 seconds' },
      now: requestedAt,
    });
    expect(expired.outcome).toEqual({
      kind: 'expired',
      by: [],
      reason: 'no decision within 300 seconds',
    });
  });

  it('carry access requests in the same envelope', () => {
    const notice = accessNotice(
      'access.requested',
      {
        id: 'acr_1',
        resource: 'shop',
        requester: { subject: 'bob', email: 'bob@example.com' },
        reason: 'incident 7',
        durationSeconds: 7200,
        approverGroups: ['dba'],
        approvalsNeeded: 1,
        requestedAt,
        expiresAt: requestedAt + 86_400_000,
      },
      {
        commands: {
          approve: 'portcullis access approve acr_1',
          deny: 'portcullis access deny acr_1',
        },
        now: requestedAt,
      },
    );
    expect(notice).toMatchObject({
      version: 1,
      type: 'access.requested',
      access: { id: 'acr_1', durationSeconds: 7200, requester: { email: 'bob@example.com' } },
      links: null,
      outcome: null,
    });
    const slack = slackMessage(notice);
    expect(slack.text).toBe('Approval needed: access to shop for 2 h by bob@example.com');
    expect(JSON.stringify(slack.blocks)).toContain('portcullis access approve acr_1');
  });
});

describe('Slack messages', () => {
  it('have a fallback text, a section with who/what/rule/expiry and URL buttons', () => {
    const message = slackMessage(approvalNotice(request, { links, now: requestedAt }));
    expect(message.text).toBe(
      'Approval needed: DELETE on shop by Report bot (agent report-bot) for alice@example.com',
    );
    const [section, actions] = message.blocks as [
      { type: string; text: { type: string; text: string } },
      {
        type: string;
        elements: { type: string; url: string; style?: string; text: { text: string } }[];
      },
    ];
    expect(section.type).toBe('section');
    expect(section.text.type).toBe('mrkdwn');
    const text = section.text.text;
    expect(text).toContain('*Who:* Report bot (agent report-bot) for alice@example.com');
    expect(text).toContain('*What:* DELETE on `shop` (`public.orders`)');
    expect(text).toContain('*Rule:* `deletes-need-approval` · 2 approvals from dba, oncall');
    expect(text).toContain(
      '*Expires:* <!date^1893499500^{date_short_pretty} {time}|2030-01-01T12:05:00.000Z>',
    );
    expect(actions.type).toBe('actions');
    expect(actions.elements.map((b) => [b.text.text, b.url, b.style])).toEqual([
      ['Approve', links.approve, 'primary'],
      ['Deny', links.deny, 'danger'],
      ['Details', links.view, undefined],
    ]);
  });

  it('escape statement text: no markup, no early end of the code block', () => {
    const text = (
      slackMessage(approvalNotice(request, { links, now: requestedAt })).blocks[0] as {
        text: { text: string };
      }
    ).text.text;
    const code = text.slice(text.indexOf('```') + 3, text.lastIndexOf('```'));
    expect(code).toBe('DELETE FROM orders WHERE note = "&lt;b&gt;ˋˋˋxˋˋˋ&lt;/b&gt;" AND id = $1');
    expect(slackEscape('a & <b> c')).toBe('a &amp; &lt;b&gt; c');
  });

  it('truncate a very long statement to fit a section', () => {
    const long = { ...request, subject: { ...request.subject, text: 'x'.repeat(10_000) } };
    const text = (
      slackMessage(approvalNotice(long, { links, now: requestedAt })).blocks[0] as {
        text: { text: string };
      }
    ).text.text;
    expect(text.length).toBeLessThan(3000);
    expect(text).toContain('x…```');
  });

  it('show the commands when there are no links, and the outcome once settled', () => {
    const waiting = slackMessage(approvalNotice(request, { links: null, now: requestedAt }));
    expect(waiting.blocks[1]).toEqual({
      type: 'context',
      elements: [
        {
          type: 'mrkdwn',
          text: 'Decide with `portcullis approve apr_1` or `portcullis deny apr_1 --reason "…"`',
        },
      ],
    });
    const granted = slackMessage(
      approvalNotice(request, {
        links,
        outcome: {
          kind: 'granted',
          by: [{ subject: 'bob', email: 'bob@example.com' }],
          reason: 'ok',
        },
        now: requestedAt,
      }),
    );
    expect(granted.text).toMatch(/^Approved: DELETE on shop/);
    expect(granted.blocks).toHaveLength(1);
    expect((granted.blocks[0] as { text: { text: string } }).text.text).toMatch(
      /^\*Approved\* by bob@example.com: ok\n/,
    );
  });
});
