import type { Logger, Person } from '@portcullis/core';
import type { GatewayConfig } from '../config/load-config.js';
import {
  errorResponse,
  type ApiRequest,
  type ApiResponse,
  type ApiRoute,
} from '../http/http-server.js';
import { bearerPerson } from '../http/bearer-person.js';
import type { GatewayIdentity } from '../identity/gateway-identity.js';
import {
  MAX_EVENTS_LAST,
  MAX_REVIEW_ROWS,
  MAX_VERIFY_EVENTS,
  parseEventsRequest,
  parseReviewRequest,
  parseVerifyRequest,
  queryFailure,
  readerRefusal,
  reviewQuery,
  staticGrants,
  withQueryLimits,
  type Refusal,
} from './event-routes-rules.js';
import {
  causeText,
  chainKeyOf,
  readStoredEvents,
  verifyStoredChains,
  type EventStoreReader,
} from './event-store-access.js';

/** Options of {@link eventRoutes}. */
export interface EventRoutesOptions {
  /** The store the gateway's store sink writes to (never a second one: chDB allows one). */
  readonly store: EventStoreReader;
  readonly identity: GatewayIdentity;
  readonly config: Pick<GatewayConfig, 'events' | 'tokens' | 'resources'>;
  readonly logger: Logger;
  /** Longest a query may run (default 30 s); the sink's inserts wait behind it meanwhile. */
  readonly queryTimeoutMs?: number;
  /**
   * Most queries queued or running at once (default 4): the store runs them one at a time, so
   * more would only wait, holding the sink's inserts back longer.
   */
  readonly maxQueued?: number;
  readonly now?: () => Date;
}

/** A query answer or the refusal that stands in for it. */
type Outcome<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly response: ApiResponse };

function refused(refusal: Refusal): ApiResponse {
  return errorResponse(refusal.status, refusal.code, refusal.message);
}

/**
 * The read side of the event store over HTTP, for reviews while the gateway runs:
 * `GET /v1/reviews/:report` (the `portcullis review` reports), `GET /v1/events` (as
 * `portcullis events`) and `GET /v1/events/verify` (the hash-chain report of
 * `portcullis verify`). They are served by the process that holds the store and query it
 * through the same instance the store sink inserts with, so reads and inserts take turns.
 *
 * Only people may read (a gateway credential as Bearer; an agent's is refused), and only members
 * of `events.readerGroups`. What leaves is what the store holds: statement text as recorded
 * (literals redacted unless the gateway records them), never the chain key.
 */
export function eventRoutes(options: EventRoutesOptions): ApiRoute[] {
  const { store, identity, config, logger } = options;
  const timeoutMs = options.queryTimeoutMs ?? 30_000;
  const maxQueued = options.maxQueued ?? 4;
  const now = options.now ?? (() => new Date());
  const retentionDays = config.events.store?.retentionDays ?? 1;
  let chainKey: Promise<string> | undefined;
  let inFlight = 0;

  async function reader(request: ApiRequest): Promise<Person | ApiResponse> {
    const person = await bearerPerson(request, identity.verifier, {
      loginHint: '(portcullis login)',
      notPerson: () =>
        errorResponse(
          403,
          'forbidden',
          'an agent may not read events; use the credential of a person in events.readerGroups',
        ),
    });
    if ('status' in person) return person;
    const refusal = readerRefusal(person, config.events.readerGroups);
    return refusal === null ? person : refused(refusal);
  }

  /** Runs `work` on the store within the limits, mapping its failures to answers. */
  async function bounded<T>(what: string, work: () => Promise<T>): Promise<Outcome<T>> {
    if (inFlight >= maxQueued) {
      return {
        ok: false,
        response: {
          ...errorResponse(
            503,
            'busy',
            'the event store is busy with other queries; try again shortly',
          ),
          headers: { 'retry-after': '5' },
        },
      };
    }
    inFlight++;
    let timer: NodeJS.Timeout | undefined;
    try {
      // The engine stops the query at the limit; this only answers if it does not.
      const late = new Promise<'late'>((resolveLate) => {
        timer = setTimeout(() => resolveLate('late'), timeoutMs + 5_000);
      });
      const running = work();
      running.catch(() => undefined);
      const result = await Promise.race([running, late]);
      if (result === 'late') return { ok: false, response: tooSlow() };
      return { ok: true, value: result };
    } catch (err) {
      const failure = queryFailure(causeText(err));
      if (failure === 'timeout') return { ok: false, response: tooSlow() };
      if (failure === 'too_many_rows') {
        return {
          ok: false,
          response: errorResponse(
            400,
            'too_many_rows',
            `the ${what} matches too many rows for one answer; narrow it (fewer days, one person, since, one session)`,
          ),
        };
      }
      if (failure === 'closed') {
        return {
          ok: false,
          response: errorResponse(
            503,
            'unavailable',
            'the event store is closed: the gateway is stopping',
          ),
        };
      }
      logger.error({ err, what }, 'an event store query for the HTTP API failed');
      return {
        ok: false,
        response: errorResponse(500, 'internal', `the event store could not run the ${what}`),
      };
    } finally {
      clearTimeout(timer);
      inFlight--;
    }
  }

  function tooSlow(): ApiResponse {
    return errorResponse(
      503,
      'timeout',
      `the query ran past ${Math.ceil(timeoutMs / 1000)} s and was stopped; narrow it (fewer days, one person, since, one session)`,
    );
  }

  return [
    {
      method: 'GET',
      path: '/v1/reviews/:report',
      handle: async (request) => {
        const person = await reader(request);
        if ('status' in person) return person;
        const parsed = parseReviewRequest(
          request.params['report'] ?? '',
          request.query,
          retentionDays,
        );
        if (!parsed.ok) return refused(parsed);
        const at = now();
        const query = reviewQuery(parsed.value, at, staticGrants(config));
        const rows = await bounded(`${parsed.value.report} review`, () =>
          store.query<Record<string, unknown>>(
            withQueryLimits(query.sql, { timeoutMs, maxRows: MAX_REVIEW_ROWS }),
            query.params,
          ),
        );
        if (!rows.ok) return rows.response;
        return {
          status: 200,
          json: {
            report: parsed.value.report,
            days: parsed.value.days,
            from: new Date(at.getTime() - parsed.value.days * 86_400_000).toISOString(),
            to: at.toISOString(),
            rows: rows.value,
          },
        };
      },
    },
    {
      method: 'GET',
      path: '/v1/events',
      handle: async (request) => {
        const person = await reader(request);
        if ('status' in person) return person;
        const parsed = parseEventsRequest(request.query);
        if (!parsed.ok) return refused(parsed);
        const events = await bounded('event query', () =>
          readStoredEvents(store, parsed.value, { timeoutMs, maxRows: MAX_EVENTS_LAST }),
        );
        if (!events.ok) return events.response;
        return { status: 200, json: { events: events.value } };
      },
    },
    {
      method: 'GET',
      path: '/v1/events/verify',
      handle: async (request) => {
        const person = await reader(request);
        if ('status' in person) return person;
        const parsed = parseVerifyRequest(request.query);
        if (!parsed.ok) return refused(parsed);
        // Loaded once; a failed load is tried again on the next request.
        const key = (chainKey ??= chainKeyOf(config.events));
        key.catch(() => {
          if (chainKey === key) chainKey = undefined;
        });
        const report = await bounded('chain verification', async () =>
          verifyStoredChains(store, await key, {
            ...parsed.value,
            limits: { timeoutMs, maxRows: MAX_VERIFY_EVENTS },
          }),
        );
        if (!report.ok) return report.response;
        return { status: 200, json: report.value };
      },
    },
  ];
}
