import { describe, expect, it } from 'vitest';
import type { PendingApproval } from './approval-broker.js';
import { escapeHtml, linkRefusedPage, reviewPage } from './approval-page.js';

const hostile = '<script>alert("x")</script>';
const request: PendingApproval = {
  id: 'apr_<x>',
  subject: {
    sessionId: 's1',
    resource: 'shop<i>',
    person: { subject: 'alice"', email: `a'${hostile}@example.com`, groups: [] },
    agent: { id: 'bot', name: hostile },
    text: `DELETE FROM orders WHERE "${hostile}" = $1`,
    kind: 'delete',
    tables: [`orders${hostile}`],
    rule: `rule${hostile}`,
    message: 'held',
  },
  policy: { groups: [hostile], count: 1, timeoutSeconds: 60, allowSelfApproval: false },
  requestedAt: 0,
  expiresAt: 60_000,
  approvals: [],
};

describe('review pages', () => {
  it('escape every value: no tag from the statement or its metadata survives', () => {
    const pages = [
      reviewPage(request, 'approve', { kind: 'login', authorizationUrl: `https://idp/"><script>` }),
      reviewPage(request, 'deny', {
        kind: 'confirm',
        person: { subject: 'bob', email: hostile, groups: [] },
        csrf: '"><script>',
        exp: 1,
        sig: '"><script>',
        error: hostile,
      }),
      reviewPage(request, 'view', { kind: 'unavailable' }),
    ];
    for (const html of pages) {
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toContain('<i>');
      expect(html).toContain('&lt;script&gt;');
    }
    expect(pages[0]).toContain(
      'DELETE FROM orders WHERE &quot;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&quot; = $1',
    );
  });

  it('show a login link, or a confirm form bound to the link and the CSRF token', () => {
    const login = reviewPage(request, 'approve', {
      kind: 'login',
      authorizationUrl: 'https://idp/auth?a=1&b=2',
    });
    expect(login).toContain('href="https://idp/auth?a=1&amp;b=2"');
    expect(login).not.toContain('<form');
    const confirm = reviewPage(request, 'deny', {
      kind: 'confirm',
      person: { subject: 'bob', email: 'bob@example.com', groups: [] },
      csrf: 'tok',
      exp: 99,
      sig: 'sig',
    });
    expect(confirm).toContain('<form method="post" action="review">');
    for (const field of [
      '<input type="hidden" name="verdict" value="deny">',
      '<input type="hidden" name="exp" value="99">',
      '<input type="hidden" name="sig" value="sig">',
      '<input type="hidden" name="csrf" value="tok">',
    ]) {
      expect(confirm).toContain(field);
    }
    expect(confirm).toContain('name="reason" maxlength="1000" required');
    expect(confirm).toContain('name="decision" value="deny"');
    expect(confirm).not.toContain('value="approve"');
    const view = reviewPage(request, 'view', {
      kind: 'confirm',
      person: { subject: 'bob', email: 'bob@example.com', groups: [] },
      csrf: 'tok',
      exp: 99,
      sig: 'sig',
    });
    expect(view).toContain('name="decision" value="approve"');
    expect(view).toContain('name="decision" value="deny"');
  });

  it('say why a link is refused', () => {
    expect(linkRefusedPage('forged')).toContain('not issued by this gateway');
    expect(linkRefusedPage('expired')).toContain('stale');
    expect(escapeHtml(`<a href='x'>&"`)).toBe('&lt;a href=&#39;x&#39;&gt;&amp;&quot;');
  });
});
