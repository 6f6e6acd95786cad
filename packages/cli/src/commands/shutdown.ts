/**
 * Runs `stop` on the first Ctrl-C or SIGTERM and exits when it resolves; a second Ctrl-C exits
 * at once.
 */
export function onShutdown(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (): void => {
    if (stopping) {
      console.error('portcullis: forced exit');
      process.exit(130);
    }
    stopping = true;
    console.error('\nportcullis: shutting down (Ctrl-C again to force)…');
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(`portcullis: error while shutting down: ${(err as Error).message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
