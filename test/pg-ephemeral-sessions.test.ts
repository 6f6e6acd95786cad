// Ephemeral upstream roles through the gateway: each session logs in upstream as its own role,
// named after the person, created when the session starts and dropped when it ends; nobody
// (client or config) holds a standing upstream credential beyond the admin that makes roles.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALICE,
  createSharedDatabase,
  dropSharedDatabase,
  sharedResource,
  sleep,
  startGatewayFixture,
  superuserQuery,
  type GatewayFixture,
} from './support/gateway-fixture.js';

const DB = 'it_pg_ephemeral_sessions';
const RUN = randomBytes(4).toString('hex');
const TEMPLATE = `it_eps_template_${RUN}`;
const ADMIN = `it_eps_admin_${RUN}`;
const ADMIN_PASSWORD = randomBytes(24).toString('base64url');
const PREFIX = `eps${RUN}_`;
let gw: GatewayFixture;

async function sessionRoles(): Promise<string[]> {
  const { rows } = await superuserQuery(
    `SELECT rolname FROM pg_roles WHERE starts_with(rolname, '${PREFIX}') ORDER BY 1`,
  );
  return rows.map((r: { rolname: string }) => r.rolname);
}

beforeAll(async () => {
  await createSharedDatabase(DB);
  await superuserQuery(
    `CREATE ROLE ${TEMPLATE} NOLOGIN;
     CREATE ROLE ${ADMIN} LOGIN CREATEROLE PASSWORD '${ADMIN_PASSWORD}';
     GRANT CONNECT ON DATABASE ${DB} TO ${TEMPLATE};`,
  );
  await superuserQuery(
    `CREATE TABLE ledger (id int, note text);
     INSERT INTO ledger VALUES (1, 'open');
     GRANT USAGE ON SCHEMA public TO ${TEMPLATE};
     GRANT SELECT ON ledger TO ${TEMPLATE};`,
    DB,
  );
  const base = sharedResource(DB, 'scram');
  gw = await startGatewayFixture({
    resources: {
      ledger: {
        ...base,
        ephemeralRoles: {
          templateRole: TEMPLATE,
          admin: { user: ADMIN, password: { value: ADMIN_PASSWORD } },
          ttlMinutes: 10,
          prefix: PREFIX,
        },
      },
    },
  });
});

afterAll(async () => {
  await gw?.dispose();
  await dropSharedDatabase(DB);
  for (const role of await sessionRoles()) await superuserQuery(`DROP ROLE IF EXISTS ${role}`);
  await superuserQuery(`DROP ROLE IF EXISTS ${ADMIN}; DROP ROLE IF EXISTS ${TEMPLATE}`);
});

describe('ephemeral roles', () => {
  it('logs each session in as its own role named after the person, and drops it after', async () => {
    const client = await gw.connect('ledger', { application_name: 'eph-session' });
    const { rows } = await client.query(
      'SELECT current_user AS cu, session_user AS su, (SELECT note FROM ledger) AS note',
    );
    const role = rows[0].cu as string;
    expect(role.startsWith(`${PREFIX}${ALICE.subject.replace(/[^a-z0-9]+/g, '_')}`)).toBe(true);
    expect(rows[0]).toMatchObject({ su: role, note: 'open' });
    // The template grants SELECT only.
    await expect(client.query("INSERT INTO ledger VALUES (2, 'x')")).rejects.toMatchObject({
      code: '42501',
    });
    expect(await sessionRoles()).toContain(role);
    await client.end();
    for (let i = 0; i < 100 && (await sessionRoles()).includes(role); i++) await sleep(50);
    expect(await sessionRoles()).not.toContain(role);
    const events = await gw.sessionEvents('eph-session');
    const start = events.find((e) => e.type === 'session.start')!;
    expect(start.upstreamUser).toBe(role);
  });

  it('gives concurrent sessions of one person distinct roles', async () => {
    const clients = await Promise.all([gw.connect('ledger'), gw.connect('ledger')]);
    const roles = await Promise.all(
      clients.map(async (c) => (await c.query('SELECT current_user AS cu')).rows[0].cu as string),
    );
    expect(new Set(roles).size).toBe(2);
    await Promise.all(clients.map((c) => c.end()));
  });
});
