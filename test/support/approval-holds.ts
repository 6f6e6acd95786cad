// Statement holds in approval suites: the `review` rule they hold DELETEs on `orders` with, the
// shop that holds them, and sending a statement a rule holds to learn the approval id its NOTICE
// names, with the query still pending until someone decides.
import type { OidcProviderServer } from '@portcullis/testkit';
import type pg from 'pg';
import {
  ALICE,
  createSharedDatabase,
  sharedResource,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
  type ResourceInput,
} from './gateway-fixture.js';
import { testIdpOidc } from './oidc-login.js';

type RuleInput = NonNullable<NonNullable<ResourceInput['policy']>['rules']>[number];

/** A DELETE on `orders` waits for one approver in `engineering`. */
export function ordersDeletesNeedApproval(): RuleInput {
  return {
    name: 'orders-deletes-need-approval',
    action: 'review',
    match: { kinds: ['delete'], tablesWritten: ['orders'] },
    approvers: { groups: ['engineering'] },
  };
}

/**
 * The shop of the statement-hold suites: database `db` with `orders` (ids 1 to `orderRows`) and
 * `archive` (one row), served as `shop`, where DELETEs on either wait for an approver in
 * `engineering` (archive's expire after 1 s). ALICE connects with her token; people log in at
 * `idp`, and `engineering` may use the shop.
 */
export async function startHoldingShop(
  idp: OidcProviderServer,
  db: string,
  orderRows: number,
): Promise<GatewayFixture> {
  await createSharedDatabase(db);
  await superuserQuery(
    `CREATE TABLE orders (id int PRIMARY KEY, item text);
     INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, ${orderRows}) g;
     CREATE TABLE archive (id int);
     INSERT INTO archive VALUES (1);
     GRANT ALL ON orders, archive TO PUBLIC;`,
    db,
  );
  return startGatewayFixture({
    resources: {
      shop: sharedResource(db, 'scram', {
        policy: {
          rules: [
            ordersDeletesNeedApproval(),
            {
              name: 'archive-deletes-need-approval',
              action: 'review',
              match: { kinds: ['delete'], tablesWritten: ['archive'] },
              approvers: { groups: ['engineering'] },
              timeoutSeconds: 1,
            },
          ],
        },
      }),
    },
    tokens: [ALICE],
    identity: {
      oidc: testIdpOidc(idp),
      groupAccess: [{ groups: ['engineering'], resources: ['shop'] }],
    },
  });
}

/** Sends `sql` and resolves with the approval id from the hold's NOTICE (and the pending query). */
export async function holdStatement(
  client: pg.Client,
  sql: string,
): Promise<{ id: string; result: Promise<pg.QueryResult> }> {
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
