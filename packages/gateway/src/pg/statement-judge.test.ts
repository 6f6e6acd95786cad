import { describe, expect, it } from 'vitest';
import { approvalRefusal } from './statement-judge.js';

describe('approvalRefusal', () => {
  const ada = { subject: 'ada', email: 'ada@example.com' };

  it('says who denied and why, that it expired, or that it could not be tracked (42501)', () => {
    expect(approvalRefusal({ kind: 'denied', by: [ada], reason: 'not now' }, 'm')).toEqual({
      code: '42501',
      message: 'm; denied by ada@example.com: not now',
    });
    expect(approvalRefusal({ kind: 'denied', by: [ada], reason: '' }, 'm')?.message).toBe(
      'm; denied by ada@example.com',
    );
    expect(approvalRefusal({ kind: 'expired', reason: 'no decision' }, 'm')).toEqual({
      code: '42501',
      message: 'm; approval expired (no decision)',
    });
    expect(approvalRefusal({ kind: 'failed', reason: 'state down' }, 'm')).toEqual({
      code: '42501',
      message: 'm; it was not run because its approval could not be tracked (state down)',
    });
  });

  it('reports a withdrawal as a cancel (57014) and nothing for a grant', () => {
    expect(approvalRefusal({ kind: 'withdrawn', reason: 'cancelled' }, 'm')?.code).toBe('57014');
    expect(approvalRefusal({ kind: 'granted', by: [ada], reason: '' }, 'm')).toBeNull();
  });
});
