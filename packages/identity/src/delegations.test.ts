import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileDelegationStore, InMemoryDelegationStore } from './delegation-store.js';
import { Delegations } from './delegations.js';
import { GatewayCredentialIssuer } from './gateway-credential-issuer.js';
import { GatewayCredentialVerifier } from './gateway-credential-verifier.js';
import { IdentityError, type DelegationRefusedReason } from './identity-error.js';
import { KeyRing } from './key-ring.js';

const ISSUER = 'https://gateway.test';
const ada = { subject: 'p-ada', email: 'ada@example.com', groups: ['dba'] };
const bob = { subject: 'p-bob', email: 'bob@example.com', groups: [] };
const bot = { id: 'report-bot', name: 'Report bot' };
const HOUR = 3600_000;

let dir: string;
let clock: number;
const now = (): number => clock;
let store: FileDelegationStore;
let delegations: Delegations;
let verifier: GatewayCredentialVerifier;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pcl-dlg-'));
  clock = Date.UTC(2030, 0, 1);
  const keys = await KeyRing.open({ dir: join(dir, 'keys'), now });
  store = await FileDelegationStore.open({ dir: join(dir, 'data'), now });
  const issuer = new GatewayCredentialIssuer({ keys, issuer: ISSUER, now });
  delegations = new Delegations({ store, issuer, now, maxTtlMs: 24 * HOUR });
  verifier = new GatewayCredentialVerifier({ keys, issuer: ISSUER, now });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>): Promise<DelegationRefusedReason> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(IdentityError);
  expect((error as IdentityError).code).toBe('PCL_ERR_IDENTITY_DELEGATION_REFUSED');
  return (error as IdentityError<'PCL_ERR_IDENTITY_DELEGATION_REFUSED'>).reason;
}

describe('Delegations', () => {
  it('creates, lists by person and by agent, and revokes', async () => {
    const d1 = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db', 'orders-db'],
      ttlMs: HOUR,
      reason: 'weekly report',
    });
    expect(d1.id).toMatch(/^dlg_[\w-]{22}$/);
    expect(d1).toMatchObject({
      person: ada,
      agentId: 'report-bot',
      resources: ['orders-db'],
      reason: 'weekly report',
      createdAt: clock,
      expiresAt: clock + HOUR,
    });
    const d2 = await delegations.createDelegation({
      person: bob,
      agentId: bot.id,
      resources: ['crm'],
      ttlMs: HOUR,
    });
    const d3 = await delegations.createDelegation({
      person: ada,
      agentId: 'other-bot',
      resources: ['crm'],
      ttlMs: HOUR,
    });
    const ids = (list: { id: string }[]): string[] => list.map((d) => d.id);
    expect(ids(await delegations.listDelegations({ person: 'p-ada' }))).toEqual([d1.id, d3.id]);
    expect(ids(await delegations.listDelegations({ agentId: bot.id }))).toEqual([d1.id, d2.id]);
    expect(ids(await delegations.listDelegations({ person: 'p-ada', agentId: bot.id }))).toEqual([
      d1.id,
    ]);

    expect(await refusal(delegations.revokeDelegation(d1.id, { person: 'p-bob' }))).toBe(
      'wrong-person',
    );
    const revoked = await delegations.revokeDelegation(d1.id, { person: 'p-ada' });
    expect(revoked.revokedAt).toBe(clock);
    clock += 1000;
    expect((await delegations.revokeDelegation(d1.id)).revokedAt).toBe(clock - 1000);
    expect(ids(await delegations.listDelegations({ person: 'p-ada' }))).toEqual([d3.id]);
    expect(ids(await delegations.listDelegations({ person: 'p-ada', includeEnded: true }))).toEqual(
      [d1.id, d3.id],
    );
    expect(await refusal(delegations.revokeDelegation('dlg_nope'))).toBe('unknown');
  });

  it('refuses malformed delegations', async () => {
    const bad = [
      { person: ada, agentId: '', resources: ['a'], ttlMs: HOUR },
      { person: ada, agentId: 'x y', resources: ['a'], ttlMs: HOUR },
      { person: ada, agentId: 'bot', resources: [], ttlMs: HOUR },
      { person: ada, agentId: 'bot', resources: [''], ttlMs: HOUR },
      { person: ada, agentId: 'bot', resources: ['a'], ttlMs: 0 },
      { person: ada, agentId: 'bot', resources: ['a'], ttlMs: 25 * HOUR },
      { person: ada, agentId: 'bot', resources: ['a'], ttlMs: Number.NaN },
      { person: { ...ada, subject: '' }, agentId: 'bot', resources: ['a'], ttlMs: HOUR },
    ];
    for (const input of bad) {
      await expect(delegations.createDelegation(input)).rejects.toMatchObject({
        code: 'PCL_ERR_IDENTITY_DELEGATION_INVALID',
      });
    }
    expect(await store.list({})).toEqual([]);
  });

  it('exchanges an agent identity and a delegation for a credential naming person and agent', async () => {
    const d = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db', 'crm'],
      ttlMs: HOUR,
    });
    const issued = await delegations.exchangeToken({
      agent: bot,
      delegationId: d.id,
      resource: 'orders-db',
    });
    expect(issued.claims).toMatchObject({
      sub: 'p-ada',
      email: 'ada@example.com',
      groups: ['dba'],
      act: { sub: 'report-bot', name: 'Report bot' },
      auth_method: 'token-exchange',
      resources: ['orders-db'],
      delegation_id: d.id,
    });
    const verified = await verifier.verify(issued.token);
    expect(verified.person).toEqual(ada);
    expect(verified.agent).toEqual(bot);
    expect(verified.resources).toEqual(['orders-db']);

    // By person subject instead of delegation id.
    const byPerson = await delegations.exchangeToken({
      agent: { id: bot.id },
      personSubject: 'p-ada',
      resource: 'crm',
    });
    expect(byPerson.claims).toMatchObject({ sub: 'p-ada', act: { sub: 'report-bot' } });
    expect(byPerson.claims.act).not.toHaveProperty('name');
  });

  it('never issues a credential that outlives the delegation', async () => {
    const d = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: 120_000,
    });
    const issued = await delegations.exchangeToken({
      agent: bot,
      delegationId: d.id,
      resource: 'orders-db',
      ttlMs: HOUR,
    });
    expect(issued.expiresAt).toBeLessThanOrEqual(d.expiresAt);
    clock = d.expiresAt - 500;
    expect(
      await refusal(
        delegations.exchangeToken({ agent: bot, delegationId: d.id, resource: 'orders-db' }),
      ),
    ).toBe('expired');
  });

  it('refuses: unknown, wrong agent, wrong person, revoked, expired, out of scope', async () => {
    const d = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: HOUR,
    });
    const exchange = (input: Partial<Parameters<Delegations['exchangeToken']>[0]>) =>
      refusal(delegations.exchangeToken({ agent: bot, resource: 'orders-db', ...input }));

    expect(await exchange({ delegationId: 'dlg_unknown' })).toBe('unknown');
    expect(await exchange({})).toBe('unknown');
    expect(await exchange({ delegationId: d.id, agent: { id: 'other-bot' } })).toBe('wrong-agent');
    expect(await exchange({ delegationId: d.id, personSubject: 'p-bob' })).toBe('wrong-person');
    expect(await exchange({ delegationId: d.id, resource: 'payroll-db' })).toBe('out-of-scope');
    expect(await exchange({ personSubject: 'p-ada', resource: 'payroll-db' })).toBe('out-of-scope');
    expect(await exchange({ personSubject: 'p-bob' })).toBe('unknown');
    expect(await exchange({ personSubject: 'p-ada', agent: { id: 'other-bot' } })).toBe('unknown');

    await delegations.revokeDelegation(d.id);
    expect(await exchange({ delegationId: d.id })).toBe('revoked');
    expect(await exchange({ personSubject: 'p-ada' })).toBe('revoked');

    const e = await delegations.createDelegation({
      person: bob,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: 60_000,
    });
    clock += 60_000;
    expect(await exchange({ delegationId: e.id })).toBe('expired');
    expect(await exchange({ personSubject: 'p-bob' })).toBe('expired');
  });

  it('uses the delegation that is still active when an older one was revoked', async () => {
    const old = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: HOUR,
    });
    await delegations.revokeDelegation(old.id);
    const fresh = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: HOUR,
    });
    const issued = await delegations.exchangeToken({
      agent: bot,
      personSubject: 'p-ada',
      resource: 'orders-db',
    });
    expect(issued.claims.delegation_id).toBe(fresh.id);
  });
});

describe('FileDelegationStore', () => {
  it('keeps delegations in a 0600 file written atomically, across reopens', async () => {
    const d = await delegations.createDelegation({
      person: ada,
      agentId: bot.id,
      resources: ['orders-db'],
      ttlMs: HOUR,
    });
    const dataDir = join(dir, 'data');
    expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
    expect(await readdir(dataDir)).toEqual(['delegations.json']);
    expect((await stat(join(dataDir, 'delegations.json'))).mode & 0o777).toBe(0o600);
    const reopened = await FileDelegationStore.open({ dir: dataDir, now });
    expect(await reopened.get(d.id)).toEqual(d);
    await reopened.revoke(d.id, clock);
    expect((await store.get(d.id))?.revokedAt).toBe(clock);
  });

  it('serialises concurrent writes', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        delegations.createDelegation({
          person: ada,
          agentId: `bot-${i}`,
          resources: ['r'],
          ttlMs: HOUR,
        }),
      ),
    );
    expect(await store.list({ personSubject: 'p-ada' })).toHaveLength(20);
  });

  it('drops ended delegations after the retention time', async () => {
    const short = await FileDelegationStore.open({
      dir: join(dir, 'short'),
      now,
      retainEndedMs: HOUR,
    });
    const base = { person: ada, agentId: 'bot', resources: ['r'], createdAt: clock };
    await short.insert({ ...base, id: 'dlg_a', expiresAt: clock + 1000 });
    await short.insert({ ...base, id: 'dlg_b', expiresAt: clock + 3 * HOUR });
    clock += 2 * HOUR;
    await short.insert({ ...base, id: 'dlg_c', expiresAt: clock + HOUR });
    expect((await short.list({})).map((d) => d.id)).toEqual(['dlg_b', 'dlg_c']);
  });

  it('refuses a store file that others can read, and a corrupt one', async () => {
    await delegations.createDelegation({
      person: ada,
      agentId: 'bot',
      resources: ['r'],
      ttlMs: HOUR,
    });
    const file = join(dir, 'data', 'delegations.json');
    await chmod(file, 0o640);
    await expect(store.list({})).rejects.toMatchObject({ code: 'PCL_ERR_IDENTITY_FILE_INSECURE' });
    await writeFile(file, '{"version":2}', { mode: 0o600 });
    await chmod(file, 0o600);
    await expect(FileDelegationStore.open({ dir: join(dir, 'data') })).rejects.toMatchObject({
      code: 'PCL_ERR_IDENTITY_FILE_CORRUPT',
      reason: 'wrong-shape',
    });
    expect(await readFile(file, 'utf8')).toBe('{"version":2}');
  });
});

describe('InMemoryDelegationStore', () => {
  it('behaves like the file store', async () => {
    const memory = new InMemoryDelegationStore();
    const base = { person: ada, agentId: 'bot', resources: ['r'], createdAt: 1, expiresAt: 2 };
    await memory.insert({ ...base, id: 'dlg_a' });
    await expect(memory.insert({ ...base, id: 'dlg_a' })).rejects.toThrow();
    expect(await memory.list({ agentId: 'bot' })).toHaveLength(1);
    expect((await memory.revoke('dlg_a', 5))?.revokedAt).toBe(5);
    expect((await memory.revoke('dlg_a', 9))?.revokedAt).toBe(5);
    expect(await memory.revoke('dlg_x', 9)).toBeUndefined();
  });
});
