import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { rmSync } from 'node:fs';
import { registerService } from './stop-all-services.js';

/** A Portcullis gateway running as a child process (the built CLI's `start`). */
export interface GatewayProcess {
  readonly host: string;
  readonly port: number;
  /** The process started (the cluster primary when `processes` > 1). */
  readonly pid: number;
  readonly dataDir: string;
  /** The JSONL event file it records to. */
  readonly eventsFile: string;
  /** Everything it wrote to stderr so far (its log). */
  stderr(): string;
  /** Sends `signal` (default SIGTERM) and waits for the exit; removes its temp dir unless kept. */
  stop(opts?: { signal?: NodeJS.Signals; keepDataDir?: boolean }): Promise<number | null>;
}

/** Options of {@link startGatewayProcess}. */
export interface StartGatewayProcessOptions {
  /** The configuration object; written as the config file (JSON is valid YAML). */
  readonly config: Record<string, unknown>;
  readonly processes?: number;
  /** Path of the CLI entry; default: the built `packages/cli/dist/bin.js` of this repository. */
  readonly cliPath?: string;
  readonly readyTimeoutMs?: number;
  /** Options for Node itself, before the CLI path (e.g. `--cpu-prof` to profile a benchmark). */
  readonly nodeArgs?: readonly string[];
}

const READY_LINE = /listening on postgresql:\/\/([^:]+):(\d+)/;

/**
 * Starts the gateway as a separate process with its own temp data dir and the given config,
 * and resolves once it prints its listening line. Use it where a test or benchmark needs the
 * gateway as users run it (multi-process mode, RSS measurements).
 */
export async function startGatewayProcess(
  opts: StartGatewayProcessOptions,
): Promise<GatewayProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'portcullis-gateway-'));
  const configFile = join(dataDir, 'portcullis.yaml');
  await writeFile(configFile, JSON.stringify({ ...opts.config, dataDir }, null, 2), {
    mode: 0o600,
  });
  const cli = opts.cliPath ?? fileURLToPath(new URL('../../cli/dist/bin.js', import.meta.url));
  const args = [...(opts.nodeArgs ?? []), cli, 'start', '--config', configFile];
  if (opts.processes !== undefined) args.push('--processes', String(opts.processes));
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => resolveExit(code)),
  );
  // A test or benchmark that fails must not leave the gateway (and its workers) running.
  const unregister = registerService({
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
      await rm(dataDir, { recursive: true, force: true });
    },
    stopSync: () => {
      // SIGTERM: the gateway stops its workers itself; this process cannot wait.
      child.kill('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  });
  const ready = new Promise<{ host: string; port: number }>((resolveReady, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(`gateway did not start within ${opts.readyTimeoutMs ?? 30_000} ms:\n${stderr}`),
        ),
      opts.readyTimeoutMs ?? 30_000,
    );
    timer.unref();
    child.stdout.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const match = READY_LINE.exec(stdout);
      if (match !== null) {
        clearTimeout(timer);
        resolveReady({ host: match[1]!, port: Number(match[2]) });
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with code ${code} before listening:\n${stderr}`));
    });
  });
  let stopped: Promise<number | null> | null = null;
  let address: { host: string; port: number };
  try {
    address = await ready;
  } catch (err) {
    unregister();
    child.kill('SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    ...address,
    pid: child.pid!,
    dataDir,
    eventsFile: join(dataDir, 'events.jsonl'),
    stderr: () => stderr,
    stop(stopOpts = {}) {
      stopped ??= (async () => {
        unregister();
        child.kill(stopOpts.signal ?? 'SIGTERM');
        const code = await exited;
        if (stopOpts.keepDataDir !== true) await rm(dataDir, { recursive: true, force: true });
        return code;
      })();
      return stopped;
    },
  };
}
