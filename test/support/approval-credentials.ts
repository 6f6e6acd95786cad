// Gateway credentials for approvers in approval suites: a device login at the test IdP, then
// the gateway API's token exchange (the credential an approver sends as Bearer).
import { OidcClient } from '@portcullis/identity';
import type { OidcProviderServer } from '@portcullis/testkit';

/** The gateway credential of `subject`, issued by the API at `apiBase`. */
export async function approverCredential(
  idp: OidcProviderServer,
  apiBase: string,
  subject: string,
): Promise<string> {
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
  const response = await fetch(`${apiBase}/v1/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: tokens.accessToken,
    }),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (response.status !== 200) throw new Error(`token exchange: ${JSON.stringify(json)}`);
  return json['access_token'] as string;
}

/** Calls the gateway API at `base`. */
export async function apiCall(
  base: string,
  method: 'GET' | 'POST',
  path: string,
  bearer?: string,
  body?: Record<string, unknown>,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(bearer === undefined ? {} : { authorization: `Bearer ${bearer}` }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

/** Sends `sql` and resolves with the approval id from the hold's NOTICE (and the pending query). */
export async function holdStatement(
  client: import('pg').Client,
  sql: string,
): Promise<{ id: string; result: Promise<import('pg').QueryResult> }> {
  const notice = new Promise<string>((resolve) =>
    client.once('notice', (msg) => resolve(msg.message ?? '')),
  );
  const result = client.query(sql);
  result.catch(() => undefined);
  const message = await notice;
  const id = /approval (apr_[\w-]+)/.exec(message)?.[1];
  if (id === undefined) throw new Error(`no approval id in the notice: ${message}`);
  return { id, result };
}
