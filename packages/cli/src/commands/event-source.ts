import type { ChdbEventStore } from '@portcullis/events';
import { isStoreInUse, openEventStore, type EventsConfig } from '@portcullis/gateway';
import { CredentialStore } from '@portcullis/identity';
import { eventsConfigOf } from './events-config.js';
import { GatewayApi, GatewayApiError } from './gateway-api.js';
import { credentialsPath, freshGatewayCredential, loadLogin } from './stored-login.js';

/** The options `review`, `verify` and `events` share for choosing where to read. */
export interface EventSourceOptions {
  readonly dataDir: string;
  readonly config?: string;
  /** Read through this gateway's HTTP API, whether or not the store is free. */
  readonly gateway?: string;
  /** The credentials file `portcullis login` wrote. */
  readonly configFile?: string;
}

/** Where a command reads: the store itself, or the running gateway's API as the logged-in person. */
export type EventSource =
  | { readonly kind: 'store'; readonly store: ChdbEventStore; readonly events: EventsConfig }
  | { readonly kind: 'api'; readonly api: GatewayApi; readonly token: string };

/** A running gateway holds the store and its API cannot be used as the person (no login). */
export class StoreHeldError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreHeldError';
  }
}

/** Help texts of the shared options. */
export const GATEWAY_OPTION_HELP =
  "read through this gateway's HTTP API (default: only while a running gateway holds the store)";
export const CONFIG_FILE_OPTION_HELP =
  'the credentials file `portcullis login` wrote (for reading through the API)';

/** Reviews and chain checks can take a while on a large store; the gateway stops them at 30 s. */
const API_TIMEOUT_MS = 60_000;

/**
 * Opens the embedded store, or, with `--gateway` or while a running gateway holds the store
 * (chDB allows one process per store), a client of that gateway's API with the person's stored
 * login. Says on stderr which it took.
 */
export async function openEventSource(opts: EventSourceOptions): Promise<EventSource> {
  if (opts.gateway !== undefined) {
    const source = await apiSource(opts, opts.gateway, false);
    note(`reading through the gateway API at ${source.api.baseUrl}`);
    return source;
  }
  const events = eventsConfigOf(opts);
  try {
    const store = await openEventStore(events);
    note(`reading the event store in ${events.store!.dir}`);
    return { kind: 'store', store, events };
  } catch (err) {
    if (!isStoreInUse(err)) throw err;
  }
  const source = await apiSource(opts, undefined, true);
  note(
    `the running gateway holds the event store; reading through its API at ${source.api.baseUrl}`,
  );
  return source;
}

/** Closes what {@link openEventSource} opened. */
export async function closeEventSource(source: EventSource): Promise<void> {
  if (source.kind === 'store') await source.store.close();
}

function note(line: string): void {
  process.stderr.write(`portcullis: ${line}\n`);
}

async function apiSource(
  opts: EventSourceOptions,
  url: string | undefined,
  storeInUse: boolean,
): Promise<EventSource & { kind: 'api' }> {
  const credentials = new CredentialStore({ path: credentialsPath(opts.configFile) });
  let token: string;
  let loginUrl: string;
  try {
    const login = await freshGatewayCredential(credentials, await loadLogin(credentials), {
      onRefresh: (message) => process.stderr.write(`${message}…\n`),
    });
    token = login.gateway.token;
    loginUrl = login.gateway.url;
  } catch (err) {
    if (!storeInUse) {
      // With --gateway the address to log in at is known.
      if (url === undefined || !(err instanceof Error)) throw err;
      throw new Error(err.message.replace("<the gateway's HTTP API URL>", url), { cause: err });
    }
    throw new StoreHeldError(
      `a running gateway holds the event store, so this reads through its HTTP API as you: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return {
    kind: 'api',
    api: new GatewayApi(url ?? loginUrl, { timeoutMs: API_TIMEOUT_MS }),
    token,
  };
}

/**
 * What to tell the person when the gateway's API refused or could not be reached: the gateway's
 * own message with what to do about it.
 */
export function apiFailureMessage(err: GatewayApiError, baseUrl: string): string {
  switch (err.status) {
    case 0:
      return `${err.message}; pass --gateway <its HTTP API URL>, or stop the gateway to read the store directly`;
    case 401:
      return `the gateway refused your credential (${err.message}); run portcullis login --gateway ${baseUrl}`;
    case 403:
      return err.code === 'readers_not_configured' || err.code === 'not_a_reader'
        ? `the gateway refused: ${err.message}`
        : `the gateway refused: ${err.message}; log in as a person in events.readerGroups (portcullis login --gateway ${baseUrl})`;
    case 404:
      return `the gateway at ${baseUrl} serves no event API (its store is off, identity is not configured, or it predates the API); pass --gateway with the address of the gateway that holds the store`;
    default:
      return `the gateway answered ${err.status}: ${err.message}`;
  }
}

/** Rethrows an API failure with {@link apiFailureMessage}; anything else as it is. */
export function explainApiFailure(source: EventSource & { kind: 'api' }): (err: unknown) => never {
  return (err) => {
    if (err instanceof GatewayApiError) {
      throw new Error(apiFailureMessage(err, source.api.baseUrl), { cause: err });
    }
    throw err;
  };
}
