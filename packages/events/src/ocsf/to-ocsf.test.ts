import type { SessionEvent } from '@portcullis/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkOcsfShape } from './check-ocsf-shape.js';
import { OCSF_SCHEMA_VERSION } from './ocsf-event.js';
import { ocsfCases, reportBot, sessionOf, T0_US } from './session-events.fixture.js';
import { datastoreActivityOf, encodeOcsfJson, toOcsf } from './to-ocsf.js';

describe('toOcsf', () => {
  it('maps every fixture to a Datastore Activity event that passes the shape check', () => {
    for (const [name, event] of Object.entries(ocsfCases)) {
      const ocsf = toOcsf(event);
      expect(checkOcsfShape(ocsf), name).toEqual([]);
      // What goes on the wire is JSON: the parsed form passes too.
      expect(checkOcsfShape(JSON.parse(JSON.stringify(ocsf))), name).toEqual([]);
      expect(ocsf.class_uid).toBe(6005);
      expect(ocsf.category_uid).toBe(6);
      expect(ocsf.metadata.version).toBe(OCSF_SCHEMA_VERSION);
      expect(ocsf.metadata.uid).toBe(event.id);
      expect(ocsf.metadata.correlation_uid).toBe(event.sessionId);
      expect(ocsf.metadata.sequence).toBe(event.seq);
      expect(ocsf.metadata.event_code).toBe(event.type);
    }
  });

  it('maps session start to Connect with the person, client and resource', () => {
    const ocsf = toOcsf(ocsfCases.start, { productVersion: '0.1.0' });
    expect(ocsf).toMatchObject({
      activity_id: 3,
      activity_name: 'Connect',
      type_uid: 600503,
      type_name: 'Datastore Activity: Connect',
      time: Math.floor(ocsfCases.start.timeUs / 1000),
      status_id: 1,
      status: 'Success',
      severity_id: 1,
      severity: 'Informational',
      actor: {
        user: {
          uid: 'u-alice',
          name: 'alice@example.com',
          email_addr: 'alice@example.com',
          full_name: 'Alice Dba',
          groups: [{ name: 'dba' }, { name: 'eng' }],
          type_id: 1,
        },
        session: { uid: ocsfCases.start.sessionId },
      },
      src_endpoint: { ip: '10.0.0.7', port: 51_001 },
      dst_endpoint: { svc_name: 'payments' },
      database: { name: 'payments', type_id: 1, type: 'Relational' },
      metadata: { product: { name: 'Portcullis', vendor_name: 'Portcullis', version: '0.1.0' } },
      unmapped: {
        auth_method: 'static-token',
        upstream_user: 'app_rw',
        client_application: 'psql',
        client_tls: true,
        time_us: ocsfCases.start.timeUs,
      },
    });
    expect(ocsf.actor.app_name).toBeUndefined();
    expect(ocsf.query_info).toBeUndefined();
    expect(ocsf.action_id).toBeUndefined();
  });

  it('maps a successful SELECT to Query with its query_info, table, duration and policy', () => {
    const ocsf = toOcsf(ocsfCases.select);
    const timeMs = Math.floor(ocsfCases.select.timeUs / 1000);
    expect(ocsf).toMatchObject({
      activity_id: 4,
      activity_name: 'Query',
      type_uid: 600504,
      status_id: 1,
      severity_id: 1,
      action_id: 1,
      disposition_id: 1,
      policy: { name: 'default' },
      query_info: {
        query_string: 'SELECT id, total FROM orders WHERE customer_id = $1',
        uid: 'a41f09c2d7e3b815',
        bytes: 288,
        query_time: timeMs,
      },
      table: { name: 'orders' },
      duration: 1,
      start_time: timeMs - 1,
      end_time: timeMs,
      unmapped: { statement: { kind: 'select', rows: 3, tag: 'SELECT 3', verdict: 'allow' } },
    });
    expect(ocsf.metadata.profiles).toEqual(['security_control']);
    expect(ocsf.message).toBe('alice@example.com ran select on payments');
  });

  it('puts the person in actor.user and the agent acting for them in actor.app_*', () => {
    const ocsf = toOcsf(ocsfCases.insertByAgent);
    expect(ocsf.actor).toEqual({
      user: {
        uid: 'u-bob',
        name: 'bob@example.com',
        email_addr: 'bob@example.com',
        groups: [{ name: 'analysts' }],
        type_id: 1,
        type: 'User',
      },
      app_name: 'report-bot',
      app_uid: 'agent-report',
      session: { uid: ocsfCases.insertByAgent.sessionId },
    });
    expect(ocsf.activity_id).toBe(6);
    expect(ocsf.message).toBe('report-bot for bob@example.com ran insert on payments');
  });

  it('maps a failed statement to Failure with the SQLSTATE', () => {
    expect(toOcsf(ocsfCases.failed)).toMatchObject({
      status_id: 2,
      status: 'Failure',
      status_code: '42P01',
      status_detail: 'relation "nope" does not exist',
      severity_id: 2,
      action_id: 1,
    });
  });

  it('maps a blocked statement to Failure, Denied, Blocked with the rule', () => {
    expect(toOcsf(ocsfCases.blocked)).toMatchObject({
      activity_id: 7,
      activity_name: 'Delete',
      status_id: 2,
      status_detail: 'blocked by rule no-ddl',
      status_code: '42501',
      severity_id: 3,
      severity: 'Medium',
      action_id: 2,
      action: 'Denied',
      disposition_id: 2,
      disposition: 'Blocked',
      policy: { name: 'no-ddl' },
    });
  });

  it('keeps masking counts and every table under unmapped', () => {
    const ocsf = toOcsf(ocsfCases.masked);
    expect(ocsf.table).toEqual({ name: 'public.customers' });
    expect(ocsf.unmapped['statement']).toMatchObject({
      tables: ['public.customers', 'orders'],
      masked: { values: 3, columns: ['email'] },
    });
  });

  it('maps a statement kind without an OCSF activity to Other with its own name', () => {
    expect(toOcsf(ocsfCases.grant)).toMatchObject({
      activity_id: 99,
      activity_name: 'Grant',
      type_uid: 600599,
    });
  });

  it('maps a held statement to its activity, Delayed, status Other', () => {
    expect(toOcsf(ocsfCases.held)).toMatchObject({
      activity_id: 7,
      status_id: 99,
      status: 'Held for approval',
      disposition_id: 14,
      disposition: 'Delayed',
      policy: { name: 'deletes-need-approval' },
      query_info: { query_string: 'DELETE FROM orders WHERE id = $1' },
    });
  });

  it('maps approval decisions to Other "Approval": granted Allowed, denied Blocked, with who and why', () => {
    expect(toOcsf(ocsfCases.granted)).toMatchObject({
      activity_id: 99,
      activity_name: 'Approval',
      status_id: 1,
      action: 'Allowed',
      disposition: 'Allowed',
      status_detail: 'granted: ticket 7',
      duration: 4000,
      unmapped: {
        approval_decision: {
          id: 'apr_1',
          outcome: 'granted',
          by: [{ subject: 'u-bob', email: 'bob@example.com' }],
        },
      },
    });
    expect(toOcsf(ocsfCases.granted).message).toContain('was granted by bob@example.com');
    expect(toOcsf(ocsfCases.denied)).toMatchObject({
      status_id: 2,
      action: 'Denied',
      disposition: 'Blocked',
      status_detail: 'denied: not during the sale',
    });
  });

  it('names the access grant a session started under', () => {
    const start = toOcsf(ocsfCases.granted_start);
    expect(start.message).toContain('under access grant acg_1');
    expect(start.unmapped).toMatchObject({
      access_grant: { id: 'acg_1', by: [{ email: 'bob@example.com' }] },
    });
  });

  it('maps a refused login to a failed Connect with the SQLSTATE and reason', () => {
    expect(toOcsf(ocsfCases.refused)).toMatchObject({
      activity_id: 3,
      activity_name: 'Connect',
      status_id: 2,
      status_code: '28P01',
      status_detail: 'expired',
      action: 'Denied',
      unmapped: { auth_failure: { reason: 'expired', code: '28P01' } },
    });
  });

  it('maps session end to Other "Disconnect" spanning the session, failed when it ended in error', () => {
    const ocsf = toOcsf(ocsfCases.end);
    const timeMs = Math.floor(ocsfCases.end.timeUs / 1000);
    expect(ocsf).toMatchObject({
      activity_id: 99,
      activity_name: 'Disconnect',
      status_id: 2,
      status_code: '08006',
      duration: 7000,
      start_time: timeMs - 7000,
      end_time: timeMs,
      unmapped: { summary: { reason: 'upstream-lost', statements: 5 } },
    });
    const clean = sessionOf(9, 1).at(-1)!;
    expect(toOcsf(clean)).toMatchObject({ status_id: 1, activity_name: 'Disconnect' });
  });

  it('keeps microseconds in unmapped.time_us since OCSF time is milliseconds', () => {
    const event = { ...ocsfCases.start, timeUs: T0_US + 999 };
    const ocsf = toOcsf(event);
    expect(ocsf.time).toBe(T0_US / 1000);
    expect(ocsf.unmapped['time_us']).toBe(T0_US + 999);
  });

  it('names the activity of each statement kind', () => {
    expect(
      [
        'select',
        'copy-to',
        'insert',
        'copy-from',
        'update',
        'delete',
        'truncate',
        'alter',
        'set',
      ].map((kind) => datastoreActivityOf(kind)),
    ).toEqual([
      [4, 'Query'],
      [1, 'Read'],
      [6, 'Create'],
      [5, 'Write'],
      [2, 'Update'],
      [7, 'Delete'],
      [7, 'Delete'],
      [2, 'Update'],
      [99, 'Set'],
    ]);
    expect(datastoreActivityOf('')).toEqual([99, 'Other']);
  });
});

describe('checkOcsfShape', () => {
  const good = (): Record<string, unknown> =>
    JSON.parse(JSON.stringify(toOcsf(ocsfCases.select))) as Record<string, unknown>;

  it('reports missing required attributes', () => {
    const event = good();
    delete event['time'];
    delete event['src_endpoint'];
    delete (event['metadata'] as Record<string, unknown>)['version'];
    expect(checkOcsfShape(event)).toEqual([
      'time is required',
      'metadata.version is required',
      'src_endpoint is required',
    ]);
  });

  it('reports wrong types, values out of range and an inconsistent type_uid', () => {
    const event = good();
    event['severity_id'] = 7;
    event['time'] = '2026-11-02';
    event['activity_id'] = 3;
    expect(checkOcsfShape(event)).toEqual([
      'time must be an integer, not string',
      'severity_id = 7 is not one of 0, 1, 2, 3, 4, 5, 6, 99',
      'type_uid 600504 is not class_uid * 100 + activity_id',
    ]);
  });

  it('reports an actor with nobody in it and an event with no datastore', () => {
    const event = good();
    event['actor'] = {};
    delete event['database'];
    delete event['table'];
    expect(checkOcsfShape(event)).toEqual([
      'actor needs at least one of user, process, session, app_name, app_uid',
      'at least one of database, databucket, table is required',
    ]);
    expect(checkOcsfShape(null)).toEqual(['the event is not an object']);
  });
});

describe('encodeOcsfJson', () => {
  const variants = (event: SessionEvent): SessionEvent[] => [
    event,
    { ...event, person: { ...event.person, groups: [...event.person.groups, 'extra'] } },
    { ...event, person: { subject: 'u-x', email: 'x@example.com', groups: [] } },
    { ...event, agent: event.agent === null ? reportBot : null },
    { ...event, client: { ...event.client, port: event.client.port + 1, tls: !event.client.tls } },
    { ...event, resource: 'other-db', upstreamUser: 'other "user"\n' },
  ];

  it('writes exactly what JSON.stringify(toOcsf(…)) writes, for every fixture', () => {
    for (const [name, event] of Object.entries(ocsfCases)) {
      for (const options of [{}, { productVersion: '1.2.3' }]) {
        expect(encodeOcsfJson(event, options), name).toBe(JSON.stringify(toOcsf(event, options)));
      }
    }
  });

  it('notices when a session’s fields differ from the ones it kept for that session id', () => {
    for (const event of Object.values(ocsfCases)) {
      for (const variant of variants(event)) {
        expect(encodeOcsfJson(variant)).toBe(JSON.stringify(toOcsf(variant)));
      }
    }
  });

  it('agrees with toOcsf on generated events (property)', () => {
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    const events = Object.values(ocsfCases);
    fc.assert(
      fc.property(
        fc.constantFrom(...events),
        fc.record({
          subject: text,
          email: text,
          groups: fc.array(text, { maxLength: 3 }),
          address: text,
          port: fc.integer({ min: 0, max: 65_535 }),
          timeUs: fc.integer({ min: -1e15, max: 4e15 }),
          seq: fc.nat(),
          resource: text,
        }),
        (event, v) => {
          const e: SessionEvent = {
            ...event,
            timeUs: v.timeUs,
            seq: v.seq,
            resource: v.resource,
            person: { subject: v.subject, email: v.email, groups: v.groups },
            client: { ...event.client, address: v.address, port: v.port },
          };
          expect(encodeOcsfJson(e)).toBe(JSON.stringify(toOcsf(e)));
        },
      ),
      { numRuns: 500 },
    );
  });
});
