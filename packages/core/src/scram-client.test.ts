import { describe, expect, it } from 'vitest';
import { ScramClient } from './scram-client.js';

describe('ScramClient', () => {
  it('computes the RFC 7677 SCRAM-SHA-256 example exchange', async () => {
    const client = new ScramClient({
      mechanism: 'SCRAM-SHA-256',
      user: 'user',
      password: 'pencil',
      nonce: 'rOprNGfwEbeRWgbNEkqO',
    });
    expect(client.clientFirst()).toBe('n,,n=user,r=rOprNGfwEbeRWgbNEkqO');
    const final = await client.clientFinal(
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    expect(final).toBe(
      'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,' +
        'p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    );
    expect(() =>
      client.verifyServerFinal('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    ).not.toThrow();
    expect(() =>
      client.verifyServerFinal('v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4='),
    ).toThrow(/does not know the credentials/);
  });

  it('escapes = and , in the user name', () => {
    expect(
      new ScramClient({
        mechanism: 'SCRAM-SHA-512',
        user: 'a=b,c',
        password: 'p',
        nonce: 'n0nce',
      }).clientFirst(),
    ).toBe('n,,n=a=3Db=2Cc,r=n0nce');
  });

  it('refuses a server that does not extend the nonce, sends no salt, or asks for odd iterations', async () => {
    const client = (): ScramClient =>
      new ScramClient({ mechanism: 'SCRAM-SHA-512', user: 'u', password: 'secret', nonce: 'abc' });
    await expect(client().clientFinal('r=xyz,s=c2FsdA==,i=4096')).rejects.toThrow(/nonce/);
    await expect(client().clientFinal('r=abc,s=c2FsdA==,i=4096')).rejects.toThrow(/nonce/);
    await expect(client().clientFinal('r=abcd,i=4096')).rejects.toThrow(/salt/);
    await expect(client().clientFinal('r=abcd,s=c2FsdA==,i=10')).rejects.toThrow(/iterations/);
    await expect(client().clientFinal('r=abcd,s=c2FsdA==,i=99999999')).rejects.toThrow(
      /iterations/,
    );
    await expect(client().clientFinal('e=unknown-user')).rejects.toThrow(/unknown-user/);
    expect(() => client().verifyServerFinal('v=AAAA')).toThrow(/before the client proof/);
  });

  it('never puts the password in an error', async () => {
    const password = 'hunter2-very-secret';
    const errors: string[] = [];
    const attempts = ['r=x,s=c2FsdA==,i=4096', 'r=abcd,s=,i=4096', 'e=invalid-proof'];
    for (const serverFirst of attempts) {
      await new ScramClient({ mechanism: 'SCRAM-SHA-256', user: 'u', password, nonce: 'abc' })
        .clientFinal(serverFirst)
        .catch((e: unknown) => errors.push(String(e)));
    }
    expect(errors).toHaveLength(attempts.length);
    for (const e of errors) expect(e).not.toContain(password);
  });
});
