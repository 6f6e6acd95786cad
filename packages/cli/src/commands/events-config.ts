import { loadConfigFile, resolveConfig, type EventsConfig } from '@portcullis/gateway';

/** Where `--config` or `--data-dir` put the events: the store, its key and the JSONL file. */
export function eventsConfigOf(opts: { config?: string; dataDir: string }): EventsConfig {
  if (opts.config !== undefined) return loadConfigFile(opts.config, process.env).events;
  // No configuration file: the defaults, under the data directory.
  return resolveConfig(
    { dataDir: opts.dataDir, listeners: { postgres: {} }, resources: {} },
    { baseDir: process.cwd(), env: {} },
    '--data-dir',
  ).events;
}

/**
 * Shows what a long query is doing on stderr (a terminal only): the label and the seconds it
 * has taken, redrawn a few times a second. Returns the function that clears it.
 */
export function showProgress(label: string): () => void {
  if (!process.stderr.isTTY) return () => {};
  const started = Date.now();
  const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
  let frame = 0;
  const draw = (): void => {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stderr.write(`\r${frames[frame++ % frames.length]} ${label} ${seconds} s`);
  };
  const timer = setInterval(draw, 120);
  return () => {
    clearInterval(timer);
    process.stderr.write('\r\x1b[K');
  };
}

/** Runs `work` with {@link showProgress} shown while it lasts. */
export async function withProgress<T>(label: string, work: () => Promise<T>): Promise<T> {
  const done = showProgress(label);
  try {
    return await work();
  } finally {
    done();
  }
}
