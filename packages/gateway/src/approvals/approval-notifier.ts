import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '@portcullis/core';
import { Counter, Gauge, Registry } from 'prom-client';
import type { ApprovalWebhookConfig, GatewayConfig } from '../config/load-config.js';
import type { ApprovalObserver, ApprovalOutcome, PendingApproval } from './approval-broker.js';
import { ApprovalLinkSigner, loadLinkKey } from './approval-links.js';
import {
  approvalNotice,
  deliveryBody,
  type Notice,
  type NoticeLinks,
} from './approval-messages.js';
import {
  DEFAULT_BACKOFF,
  classifyResponse,
  retryDelayMs,
  signDelivery,
  type AttemptResult,
  type Backoff,
} from './approval-notifier-delivery.js';

/** How a delivery ended, as counted in `portcullis_approval_webhook_deliveries_total`. */
export type DeliveryOutcome = 'delivered' | 'rejected' | 'failed' | 'abandoned' | 'dropped';

/** Options of an {@link ApprovalNotifier}. */
export interface ApprovalNotifierOptions {
  readonly webhooks: readonly ApprovalWebhookConfig[];
  /** `approvals.publicUrl`; links are made only with it and {@link links}. */
  readonly publicUrl: string | null;
  /** Signs review links; null: notices carry the CLI commands only. */
  readonly links: ApprovalLinkSigner | null;
  readonly logger: Logger;
  /** Where the delivery metrics are registered (the gateway's registry). */
  readonly registry?: Registry;
  readonly now?: () => number;
  readonly random?: () => number;
  readonly backoff?: Backoff;
  /** Deliveries in progress (attempting or waiting to retry) beyond which new ones are dropped. */
  readonly maxInFlight?: number;
}

const USER_AGENT = 'Portcullis-Webhooks/1';

/**
 * Tells approvers about held statements (and, through {@link notify}, access requests): every
 * notice is POSTed to every configured webhook, generic JSON or a Slack message, signed with the
 * webhook's secret, and retried with backoff on network errors, timeouts, 429 and 5xx. Delivery
 * runs beside the held statement and never delays it; on {@link close} deliveries still in
 * progress are abandoned.
 */
export class ApprovalNotifier implements ApprovalObserver {
  readonly registry: Registry;
  readonly #options: ApprovalNotifierOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #backoff: Backoff;
  readonly #maxInFlight: number;
  readonly #stop = new AbortController();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #deliveries: Counter;
  readonly #attempts: Counter;

  constructor(options: ApprovalNotifierOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#maxInFlight = options.maxInFlight ?? 1000;
    this.registry = options.registry ?? new Registry();
    const registers = [this.registry];
    this.#deliveries = new Counter({
      name: 'portcullis_approval_webhook_deliveries_total',
      help: 'Approval notifications per webhook and outcome (delivered, rejected, failed after retries, abandoned at shutdown, dropped when too many were in flight).',
      labelNames: ['webhook', 'outcome'],
      registers,
    });
    this.#attempts = new Counter({
      name: 'portcullis_approval_webhook_attempts_total',
      help: 'HTTP attempts of approval notifications per webhook and result (2xx, 4xx, 429, 5xx, error, timeout).',
      labelNames: ['webhook', 'result'],
      registers,
    });
    const inFlight = this.#inFlight;
    new Gauge({
      name: 'portcullis_approval_webhook_in_flight',
      help: 'Approval notifications being attempted or waiting to be retried.',
      registers,
      collect() {
        this.set(inFlight.size);
      },
    });
  }

  requested(request: PendingApproval): void {
    this.notify(approvalNotice(request, { links: this.#links(request), now: this.#now() }));
  }

  settled(request: PendingApproval, outcome: ApprovalOutcome): void {
    this.notify(approvalNotice(request, { links: null, outcome, now: this.#now() }));
  }

  /** Sends `notice` to every webhook in the background; returns at once. */
  notify(notice: Notice): void {
    if (this.#stop.signal.aborted) return;
    for (const webhook of this.#options.webhooks) {
      if (this.#inFlight.size >= this.#maxInFlight) {
        this.#deliveries.inc({ webhook: webhook.name, outcome: 'dropped' });
        this.#options.logger.warn(
          { webhook: webhook.name, type: notice.type, id: noticeId(notice) },
          'approval notification dropped: too many deliveries in flight',
        );
        continue;
      }
      const delivery = this.#deliver(webhook, notice)
        .then((outcome) => this.#deliveries.inc({ webhook: webhook.name, outcome }))
        .catch((err: unknown) => {
          // Not expected (every failure is an outcome); never an unhandled rejection.
          this.#options.logger.error(
            { webhook: webhook.name, err },
            'approval notification failed unexpectedly',
          );
        })
        .finally(() => this.#inFlight.delete(delivery));
      this.#inFlight.add(delivery);
    }
  }

  /** Resolves once no delivery is in progress (tests, orderly shutdown). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** Abandons deliveries in progress (their retries are not made) and accepts no more. */
  async close(): Promise<void> {
    this.#stop.abort();
    await this.idle();
  }

  #links(request: PendingApproval): NoticeLinks | null {
    const { publicUrl, links } = this.#options;
    if (publicUrl === null || links === null) return null;
    const exp = Math.ceil(request.expiresAt / 1000);
    const url = (verdict: 'approve' | 'deny' | 'view'): string =>
      links.url(publicUrl, { id: request.id, verdict, exp });
    return { approve: url('approve'), deny: url('deny'), view: url('view') };
  }

  async #deliver(webhook: ApprovalWebhookConfig, notice: Notice): Promise<DeliveryOutcome> {
    const { logger } = this.#options;
    const signal = this.#stop.signal;
    const body = deliveryBody(webhook.format, notice);
    const delivery = `dlv_${randomBytes(12).toString('base64url')}`;
    const context = { webhook: webhook.name, delivery, type: notice.type, id: noticeId(notice) };
    for (let attempt = 1; ; attempt++) {
      const result = await this.#attempt(webhook, notice, body, delivery);
      if (signal.aborted) return 'abandoned';
      if (result.kind === 'delivered') {
        logger.debug({ ...context, attempt }, 'approval notification delivered');
        return 'delivered';
      }
      if (result.kind === 'rejected') {
        logger.warn(
          { ...context, attempt, status: result.status },
          'approval notification refused by the webhook; not retried',
        );
        return 'rejected';
      }
      const failure = { ...context, attempt, status: result.status, error: result.error };
      if (attempt > webhook.retries) {
        logger.warn(failure, 'approval notification failed; no retries left');
        return 'failed';
      }
      const delayMs = retryDelayMs(attempt, result.retryAfterMs, this.#random(), this.#backoff);
      logger.info({ ...failure, retryInMs: delayMs }, 'approval notification failed; retrying');
      try {
        await sleep(delayMs, undefined, { signal, ref: false });
      } catch {
        return 'abandoned';
      }
    }
  }

  async #attempt(
    webhook: ApprovalWebhookConfig,
    notice: Notice,
    body: string,
    delivery: string,
  ): Promise<AttemptResult & { error?: string }> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'x-portcullis-delivery': delivery,
      'x-portcullis-event': notice.type,
    };
    if (webhook.secret !== null) {
      // Signed at each attempt: the timestamp is fresh, the body and delivery id are not.
      headers['x-portcullis-signature'] = signDelivery(
        webhook.secret,
        body,
        Math.floor(this.#now() / 1000),
      );
    }
    const timeout = AbortSignal.timeout(webhook.timeoutMs);
    try {
      const response = await fetch(webhook.url, {
        method: 'POST',
        headers,
        body,
        // A redirect is a misconfigured URL; following it would send the body elsewhere.
        redirect: 'manual',
        signal: AbortSignal.any([this.#stop.signal, timeout]),
      });
      await response.body?.cancel().catch(() => undefined);
      const result = classifyResponse(
        response.status,
        response.headers.get('retry-after'),
        this.#now(),
      );
      this.#attempts.inc({ webhook: webhook.name, result: statusClass(response.status) });
      return result;
    } catch (err) {
      const timedOut = timeout.aborted && !this.#stop.signal.aborted;
      this.#attempts.inc({ webhook: webhook.name, result: timedOut ? 'timeout' : 'error' });
      // The cause's code (ECONNREFUSED…) only: messages can carry the URL, and Slack's holds a key.
      return {
        kind: 'retry',
        status: null,
        retryAfterMs: null,
        error: timedOut ? 'timeout' : errorCode(err),
      };
    }
  }
}

function statusClass(status: number): string {
  if (status === 429) return '429';
  return `${Math.floor(status / 100)}xx`;
}

function errorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown } } | null)?.cause;
  if (typeof cause?.code === 'string') return cause.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'network-error';
}

function noticeId(notice: Notice): string {
  return 'approval' in notice ? notice.approval.id : notice.access.id;
}

/**
 * The notifier for `config.approvals.webhooks`, or null when none is configured. Links are made
 * when the gateway has a public address and an OIDC provider for approvers to log in with.
 */
export async function createApprovalNotifier(
  config: GatewayConfig,
  options: { readonly logger: Logger; readonly registry?: Registry },
): Promise<ApprovalNotifier | null> {
  const { webhooks, publicUrl } = config.approvals;
  if (webhooks.length === 0) return null;
  const linked = publicUrl !== null && config.identity?.oidc != null;
  return new ApprovalNotifier({
    webhooks,
    publicUrl,
    links: linked ? new ApprovalLinkSigner(await loadLinkKey(config.dataDir)) : null,
    logger: options.logger,
    ...(options.registry === undefined ? {} : { registry: options.registry }),
  });
}
