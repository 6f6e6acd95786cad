import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { silentLogger } from '@portcullis/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { PendingApproval } from './approval-broker.js';
import { verifyDelivery } from './approval-notifier-delivery.js';
import { ApprovalNotifier } from './approval-notifier.js';
import type { ApprovalWebhookConfig } from '../config/load-config.js';

interface Received {
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

/** A loopback receiver answering each request with the next of `statuses` (the last repeats). */
async function receiver(
  statuses: (number | 'hang')[],
  extraHeaders: Record<string, string> = {},
): Promise<{ url: string; received: Received[]; server: Server }> {
  const received: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const status = statuses[Math.min(received.length - 1, statuses.length - 1)]!;
      if (status === 'hang') return;
      res.writeHead(status, extraHeaders).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    received,
    server,
  };
}

const servers: Server[] = [];
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

const request: PendingApproval = {
  id: 'apr_1',
  subject: {
    sessionId: 's1',
    resource: 'shop',
    person: { subject: 'alice', email: 'alice@example.com', groups: [] },
    agent: null,
    text: 'DELETE FROM orders WHERE id = $1',
    kind: 'delete',
    tables: ['orders'],
    rule: 'r',
    message: 'held',
  },
  policy: { groups: ['dba'], count: 1, timeoutSeconds: 60, allowSelfApproval: false },
  requestedAt: Date.now(),
  expiresAt: Date.now() + 60_000,
  approvals: [],
};

function webhook(url: string, extra: Partial<ApprovalWebhookConfig> = {}): ApprovalWebhookConfig {
  return {
    name: 'hook',
    url,
    format: 'generic',
    secret: 's3cret',
    timeoutMs: 2000,
    retries: 3,
    ...extra,
  };
}

function notifier(webhooks: ApprovalWebhookConfig[]): ApprovalNotifier {
  return new ApprovalNotifier({
    webhooks,
    publicUrl: null,
    links: null,
    logger: silentLogger,
    backoff: { baseMs: 20, maxMs: 100 },
  });
}

async function counter(n: ApprovalNotifier): Promise<Record<string, number>> {
  const metric = await n.registry
    .getSingleMetric('portcullis_approval_webhook_deliveries_total')!
    .get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels['outcome']), v.value]));
}

describe('ApprovalNotifier', () => {
  it('delivers a signed notice; retries 503 and 429 with the same delivery id', async () => {
    const hook = await receiver([503, 429, 200], { 'retry-after': '0' });
    const n = notifier([webhook(hook.url)]);
    n.requested(request);
    await n.idle();
    expect(hook.received).toHaveLength(3);
    const ids = new Set(hook.received.map((r) => r.headers['x-portcullis-delivery']));
    expect(ids.size).toBe(1);
    expect([...ids][0]).toMatch(/^dlv_[\w-]{16}$/);
    for (const r of hook.received) {
      const signature = r.headers['x-portcullis-signature'] as string;
      expect(verifyDelivery('s3cret', signature, r.body, Math.floor(Date.now() / 1000))).toBe(true);
      expect(r.headers['x-portcullis-event']).toBe('approval.requested');
      expect(r.headers['content-type']).toBe('application/json');
    }
    expect(JSON.parse(hook.received[0]!.body)).toMatchObject({
      version: 1,
      type: 'approval.requested',
      approval: { id: 'apr_1' },
      links: null,
      commands: { approve: 'portcullis approve apr_1' },
    });
    expect(await counter(n)).toEqual({ delivered: 1 });
  });

  it('does not retry a 400, gives up after `retries`, sends no signature without a secret', async () => {
    const bad = await receiver([400]);
    const down = await receiver([500]);
    const n = notifier([
      webhook(bad.url, { name: 'bad' }),
      webhook(down.url, { name: 'down', retries: 2, secret: null }),
    ]);
    n.settled(request, { kind: 'expired', reason: 'no decision' });
    await n.idle();
    expect(bad.received).toHaveLength(1);
    expect(down.received).toHaveLength(3);
    expect(down.received[0]!.headers['x-portcullis-signature']).toBeUndefined();
    expect(JSON.parse(down.received[0]!.body)).toMatchObject({ type: 'approval.expired' });
    expect(await counter(n)).toEqual({ rejected: 1, failed: 1 });
  });

  it('retries after a timeout and a refused connection', async () => {
    const slow = await receiver(['hang', 200]);
    const n = notifier([
      webhook(slow.url, { name: 'slow', timeoutMs: 200 }),
      webhook('http://127.0.0.1:1/hook', { name: 'closed', retries: 1 }),
    ]);
    n.requested(request);
    await n.idle();
    expect(slow.received).toHaveLength(2);
    expect(await counter(n)).toEqual({ delivered: 1, failed: 1 });
  });

  it('abandons deliveries in progress on close and sends nothing after', async () => {
    const hang = await receiver(['hang']);
    const n = notifier([webhook(hang.url, { timeoutMs: 60_000 })]);
    n.requested(request);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await n.close();
    expect(Date.now() - started).toBeLessThan(1000);
    n.requested(request);
    await n.idle();
    expect(hang.received).toHaveLength(1);
    expect(await counter(n)).toEqual({ abandoned: 1 });
  });

  it('sends Slack messages to a slack webhook', async () => {
    const slack = await receiver([200]);
    const n = notifier([webhook(slack.url, { format: 'slack', secret: null })]);
    n.requested(request);
    await n.idle();
    const body = JSON.parse(slack.received[0]!.body) as { text: string; blocks: unknown[] };
    expect(body.text).toBe('Approval needed: DELETE on shop by alice@example.com');
    expect(body.blocks).toHaveLength(2);
  });
});
