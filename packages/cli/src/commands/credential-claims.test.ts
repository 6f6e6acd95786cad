import { describe, expect, it } from 'vitest';
import { readCredentialClaims } from './credential-claims.js';

const jwt = (claims: unknown): string =>
  `eyJhbGciOiJFUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

describe('readCredentialClaims', () => {
  it('reads a person', () => {
    expect(
      readCredentialClaims(
        jwt({ sub: 'ada', email: 'ada@example.com', groups: ['eng', 7], exp: 1_700_000_000 }),
      ),
    ).toEqual({
      subject: 'ada',
      email: 'ada@example.com',
      groups: ['eng'],
      expiresAt: 1_700_000_000_000,
      agent: null,
      resources: null,
    });
  });

  it('reads an agent acting for a person', () => {
    const summary = readCredentialClaims(
      jwt({
        sub: 'ada',
        exp: 1,
        act: { sub: 'report-bot', name: 'Report bot' },
        resources: ['orders'],
      }),
    );
    expect(summary?.agent).toEqual({ id: 'report-bot', name: 'Report bot' });
    expect(summary?.resources).toEqual(['orders']);
  });

  it('gives up on what is not a credential', () => {
    for (const token of [
      '',
      'a.b',
      'a.b.c',
      jwt(null),
      jwt({ sub: 'x' }),
      jwt({ exp: 1 }),
      'pcl_demo_token',
    ]) {
      expect(readCredentialClaims(token), token).toBeUndefined();
    }
  });
});
