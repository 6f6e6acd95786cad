import type { VerifiedGatewayCredential } from '@portcullis/identity';
import { describe, expect, it } from 'vitest';
import { bearerPerson } from './bearer-person.js';
import { errorResponse, type ApiRequest } from './http-server.js';

const person = { subject: 'ada', email: 'ada@example.com', groups: ['eng'] };

const own = {
  person,
  agent: null,
  authMethod: 'oidc',
  resources: null,
  delegationId: null,
} as unknown as VerifiedGatewayCredential;

/** Verifies the token `good` as `credential`; refuses any other. */
const verifier = (credential: VerifiedGatewayCredential) => ({
  verify: (token: string) =>
    token === 'good' ? Promise.resolve(credential) : Promise.reject(new Error('refused')),
});

const request = (authorization?: string): ApiRequest => ({
  method: 'GET',
  path: '/v1/x',
  query: new URLSearchParams(),
  headers: new Map(authorization === undefined ? [] : [['authorization', authorization]]),
  body: Buffer.alloc(0),
  params: {},
});

const notPerson = () => errorResponse(403, 'forbidden', 'people only');

describe('bearerPerson', () => {
  it('answers the person behind a verified credential', async () => {
    expect(await bearerPerson(request('Bearer good'), verifier(own), { notPerson })).toEqual(
      person,
    );
  });

  it('asks for a credential when none is sent, with the hint', async () => {
    expect(
      await bearerPerson(request(), verifier(own), { notPerson, loginHint: '(portcullis login)' }),
    ).toEqual({
      status: 401,
      json: {
        error: {
          code: 'unauthorized',
          message: 'send your gateway credential as Authorization: Bearer … (portcullis login)',
        },
      },
      headers: { 'www-authenticate': 'Bearer' },
    });
  });

  it('refuses a credential that does not verify', async () => {
    expect(await bearerPerson(request('Bearer bad'), verifier(own), { notPerson })).toEqual(
      errorResponse(401, 'invalid_token', 'the gateway credential was refused'),
    );
  });

  it("refuses an agent's credential, and others isPerson leaves out", async () => {
    const agent = { ...own, agent: { id: 'bot', name: 'Bot' } } as VerifiedGatewayCredential;
    expect(await bearerPerson(request('Bearer good'), verifier(agent), { notPerson })).toEqual(
      notPerson(),
    );
    const exchanged = { ...own, authMethod: 'token-exchange' } as VerifiedGatewayCredential;
    expect(await bearerPerson(request('Bearer good'), verifier(exchanged), { notPerson })).toEqual(
      person,
    );
    const oidcOnly = {
      notPerson,
      isPerson: (v: VerifiedGatewayCredential) => v.authMethod === 'oidc',
    };
    expect(await bearerPerson(request('Bearer good'), verifier(exchanged), oidcOnly)).toEqual(
      notPerson(),
    );
  });
});
