import { loadModule } from 'libpg-query';

let loading: Promise<void> | undefined;
let ready = false;
let brokenBy: unknown;
let broken = false;

/**
 * Loads the PostgreSQL parser (libpg-query's WebAssembly module). Call it once at start and
 * await it; analysis is synchronous afterwards. Later calls share the first load, and a failed
 * load may be retried.
 */
export async function loadSqlParser(): Promise<void> {
  loading ??= loadModule().then(
    () => {
      ready = true;
    },
    (err: unknown) => {
      loading = undefined;
      throw new Error('the PostgreSQL parser (libpg-query) could not be loaded', { cause: err });
    },
  );
  return loading;
}

/** Throws unless the parser is loaded and has not failed in a way that spoils its state. */
export function assertParserUsable(): void {
  if (broken) {
    throw new Error(
      'the PostgreSQL parser failed inside its WebAssembly module and its state can no longer ' +
        'be trusted; restart the process',
      { cause: brokenBy },
    );
  }
  if (!ready) throw new Error('await loadSqlParser() before analyzing statements');
}

/**
 * Records that a call into the module ended in an unexpected exception (a stack overflow or a
 * trap). Such an exception unwinds past the module's own cleanup, so every later call refuses.
 */
export function markParserBroken(cause: unknown): void {
  broken = true;
  brokenBy = cause;
}
