import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
/** The built CLI (`npx tsc -b` first). */
export const CLI = join(ROOT, 'packages/cli/dist/bin.js');

/** How the CLI process ended. */
export interface CliExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** `portcullis start --processes N`, running and listening. */
export interface CliCluster {
  readonly child: ChildProcess;
  /** The PostgreSQL listener's host and port, from the CLI's output. */
  readonly host: string;
  readonly port: number;
  /** The HTTP API's base URL, from the CLI's output. */
  readonly httpBase: string;
  /** The process count the CLI reported. */
  readonly processes: number;
  readonly exited: Promise<CliExit>;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once it has exited. */
  stop(): Promise<void>;
}

/**
 * Starts the built CLI as users run it (`start --config FILE --processes N`, in `cwd`, with
 * `env` added) and resolves once it reports both its PostgreSQL listener and its HTTP API;
 * rejects when it exits first or does not report within 30 s.
 */
export async function startCliCluster(options: {
  readonly configFile: string;
  readonly cwd: string;
  readonly processes: number;
  readonly env: Readonly<Record<string, string>>;
}): Promise<CliCluster> {
  const child = spawn(
    process.execPath,
    [CLI, 'start', '--config', options.configFile, '--processes', String(options.processes)],
    {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  const exited = new Promise<CliExit>((resolveExit) =>
    child.once('exit', (code, signal) => resolveExit({ code, signal })),
  );
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const listening = new Promise<{
    host: string;
    port: number;
    processes: number;
    httpBase: string;
  }>((resolveListening, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the CLI did not report listening within 30 s:\n${output}`)),
      30_000,
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const match =
        /Portcullis is listening on postgresql:\/\/([^:\s]+):(\d+) \((\d+) processes\)/.exec(
          output,
        );
      const api = /HTTP API on (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (match !== null && api !== null) {
        clearTimeout(timer);
        resolveListening({
          host: match[1]!,
          port: Number(match[2]),
          processes: Number(match[3]),
          httpBase: api[1]!,
        });
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(
        new Error(`the CLI exited (code ${code}, signal ${signal}) before listening:\n${output}`),
      );
    });
  });
  let address: { host: string; port: number; processes: number; httpBase: string };
  try {
    address = await listening;
  } catch (err) {
    // Not listening: nothing of it may outlive the test.
    child.kill('SIGKILL');
    throw err;
  }
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    child,
    ...address,
    exited,
    output: () => output,
    async stop() {
      if (!running()) return;
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (running()) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}
