// Logins at the test IdP for integration suites: the gateway's `identity.oidc` settings for it, a
// person's device login, and the gateway API's token exchange that turns the IdP token into the
// gateway credential a person sends as Bearer (and as the pg password).
import type { GatewayConfigInput } from '@portcullis/gateway';
import { OidcClient, type OidcTokens } from '@portcullis/identity';
import type { OidcProviderServer } from '@portcullis/testkit';

type OidcInput = NonNullable<GatewayConfigInput['identity']>['oidc'];

/** `identity.oidc` for the test IdP over plain HTTP, with `extra` settings (e.g. `scopes`). */
export function testIdpOidc(idp: OidcProviderServer, extra: Partial<OidcInput> = {}): OidcInput {
  return {
    issuer: idp.issuer,
    clientId: idp.cliClient.clientId,
    audience: [idp.resource, idp.cliClient.clientId],
    resource: idp.resource,
    allowInsecureHttp: true,
    ...extra,
  };
}

/** The IdP tokens of `subject` through the CLI's device flow, completed in the IdP's pages. */
export async function deviceLogin(idp: OidcProviderServer, subject: string): Promise<OidcTokens> {
  const cli = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: idp.cliClient.clientId,
    allowInsecureRequests: true,
  });
  const started = await cli.startDeviceLogin({ resource: idp.resource });
  const [tokens] = await Promise.all([
    cli.pollDeviceLogin(started, { intervalMs: 100 }),
    idp.completeDeviceFlow(started.userCode, subject),
  ]);
  return tokens;
}

/** The gateway credential the API at `apiBase` issues for a person's IdP `accessToken`. */
export async function exchangeToken(
  apiBase: string,
  accessToken: string,
): Promise<{ credential: string; expiresIn: number }> {
  return tokenExchange(apiBase, { subject_token: accessToken });
}

/**
 * The credential of the test IdP's first agent acting for a person under their delegation
 * `delegationId`, for `resource`: its client-credentials token exchanged at the API.
 */
export async function delegatedAgentCredential(
  idp: OidcProviderServer,
  apiBase: string,
  delegationId: string,
  resource: string,
): Promise<string> {
  const agent = idp.agents[0]!;
  const client = await OidcClient.discover({
    issuer: idp.issuer,
    clientId: agent.clientId,
    clientSecret: agent.clientSecret,
    allowInsecureRequests: true,
  });
  const tokens = await client.clientCredentials({ resource: idp.resource });
  const exchanged = await tokenExchange(apiBase, {
    actor_token: tokens.accessToken,
    delegation_id: delegationId,
    resource,
  });
  return exchanged.credential;
}

/** POSTs an RFC 8693 token exchange to the API at `apiBase`; fails unless it answers 200. */
async function tokenExchange(
  apiBase: string,
  params: Record<string, string>,
): Promise<{ credential: string; expiresIn: number }> {
  const response = await fetch(`${apiBase}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      ...params,
    }),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new Error(`token exchange: ${JSON.stringify(json)}`);
  return { credential: json['access_token'] as string, expiresIn: json['expires_in'] as number };
}

/** The gateway credential of `subject`: a device login, then the API's token exchange. */
export async function personCredential(
  idp: OidcProviderServer,
  apiBase: string,
  subject: string,
): Promise<string> {
  const tokens = await deviceLogin(idp, subject);
  return (await exchangeToken(apiBase, tokens.accessToken)).credential;
}
