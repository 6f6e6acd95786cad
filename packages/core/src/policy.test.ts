import { describe, expect, it } from 'vitest';
import {
  ALLOW_ALL,
  evaluatePolicy,
  tableMatches,
  withinWindow,
  type StatementFacts,
  type StatementPolicy,
  type SubjectFacts,
} from './policy.js';

const facts = (over: Partial<StatementFacts> = {}): StatementFacts => ({
  parsed: true,
  kinds: ['select'],
  tablesRead: [],
  tablesWritten: [],
  functions: [],
  flags: [],
  readOnly: true,
  ...over,
});
const alice: SubjectFacts = {
  person: { subject: 'alice', email: 'alice@example.com', groups: ['engineering'] },
  agentActing: false,
  at: new Date('2026-11-30T12:00:00Z'),
};

const policy: StatementPolicy = {
  default: 'allow',
  unparsable: 'block',
  rules: [
    { name: 'dba-may-drop', action: 'allow', match: { kinds: ['drop'], groups: ['dba'] } },
    { name: 'no-drop', action: 'block', match: { flags: ['drop', 'truncate'] } },
    {
      name: 'no-unbounded-delete',
      action: 'block',
      match: { flags: ['delete-without-where'] },
      message: 'add a WHERE clause',
    },
    {
      name: 'agents-hold-order-writes',
      action: 'review',
      match: { agent: true, tablesWritten: ['orders'] },
    },
    { name: 'no-file-access', action: 'block', match: { functions: ['pg_read_file'] } },
    {
      name: 'night-writes',
      action: 'block',
      match: { readOnly: false, time: { from: '22:00', to: '06:00' } },
    },
  ],
};

describe('evaluatePolicy', () => {
  it('takes the first matching rule and names it', () => {
    expect(
      evaluatePolicy(
        policy,
        facts({ kinds: ['drop'], flags: ['drop', 'ddl'], readOnly: false }),
        alice,
      ),
    ).toEqual({
      action: 'block',
      rule: 'no-drop',
      message: 'statement blocked by policy rule "no-drop"',
    });
    const dba = { ...alice, person: { ...alice.person, groups: ['dba'] } };
    expect(evaluatePolicy(policy, facts({ kinds: ['drop'], flags: ['drop'] }), dba).rule).toBe(
      'dba-may-drop',
    );
  });

  it('uses the rule message when given', () => {
    expect(
      evaluatePolicy(policy, facts({ kinds: ['delete'], flags: ['delete-without-where'] }), alice)
        .message,
    ).toBe('add a WHERE clause');
  });

  it('matches agents, written tables and functions', () => {
    const write = facts({
      kinds: ['update'],
      tablesWritten: [{ schema: 'public', name: 'orders' }],
      readOnly: false,
    });
    expect(evaluatePolicy(policy, write, alice).action).toBe('allow');
    expect(evaluatePolicy(policy, write, { ...alice, agentActing: true })).toMatchObject({
      action: 'review',
      rule: 'agents-hold-order-writes',
    });
    expect(
      evaluatePolicy(policy, facts({ functions: ['pg_catalog.pg_read_file'] }), alice).rule,
    ).toBe('no-file-access');
  });

  it('applies time windows that wrap midnight', () => {
    const write = facts({ kinds: ['insert'], readOnly: false });
    expect(
      evaluatePolicy(policy, write, { ...alice, at: new Date('2026-11-30T23:30:00Z') }).rule,
    ).toBe('night-writes');
    expect(
      evaluatePolicy(policy, write, { ...alice, at: new Date('2026-11-30T05:59:00Z') }).rule,
    ).toBe('night-writes');
    expect(
      evaluatePolicy(policy, write, { ...alice, at: new Date('2026-11-30T06:00:00Z') }).rule,
    ).toBe('default');
  });

  it('decides unparsable text by the policy, not by a crash', () => {
    expect(evaluatePolicy(policy, facts({ parsed: false }), alice)).toMatchObject({
      action: 'block',
      rule: 'unparsable',
    });
    expect(evaluatePolicy(ALLOW_ALL, facts({ parsed: false }), alice).action).toBe('allow');
  });

  it('falls back to the default', () => {
    expect(evaluatePolicy({ ...policy, default: 'block' }, facts(), alice)).toMatchObject({
      action: 'block',
      rule: 'default',
      message: 'statements on this resource are blocked by default',
    });
  });
});

describe('tableMatches', () => {
  it.each([
    [{ schema: null, name: 'orders' }, 'orders', true],
    [{ schema: 'public', name: 'orders' }, 'orders', true],
    [{ schema: null, name: 'orders' }, 'public.orders', true],
    [{ schema: 'sales', name: 'orders' }, 'public.orders', false],
    [{ schema: 'sales', name: 'orders' }, 'sales.*', true],
    [{ schema: 'sales', name: 'orders' }, '*', true],
    [{ schema: null, name: 'order' }, 'orders', false],
  ])('%j against %s is %s', (table, pattern, expected) => {
    expect(tableMatches(table, pattern)).toBe(expected);
  });
});

describe('withinWindow', () => {
  it('honours the time zone', () => {
    const at = new Date('2026-11-30T21:30:00Z'); // 22:30 in Berlin (UTC+1)
    expect(withinWindow({ from: '22:00', to: '23:00', timeZone: 'Europe/Berlin' }, at)).toBe(true);
    expect(withinWindow({ from: '22:00', to: '23:00' }, at)).toBe(false);
  });
});
