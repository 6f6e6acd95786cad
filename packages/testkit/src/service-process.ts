import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { tail } from './run-program.js';

/** How a service process ended. */
export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Whether `pid` runs (a zombie, which an exiting Node process never reaps, counts as ended). */
function aliveSync(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * A long-running server program started as a child of this process, its output appended to a log
 * file. The child is unref'ed: it does not keep this process alive; the exit handler of the
 * service registry stops it when this process exits.
 */
export class ServiceProcess {
  readonly pid: number;
  readonly exited: Promise<ServiceExit>;
  #exit: ServiceExit | undefined;
  readonly #child: ChildProcess;
  readonly #logFile: string;
  readonly #logStart: number;

  private constructor(child: ChildProcess, logFile: string, logStart: number) {
    if (child.pid === undefined) throw new Error('service process has no pid');
    this.pid = child.pid;
    this.#child = child;
    this.#logFile = logFile;
    this.#logStart = logStart;
    this.exited = new Promise<ServiceExit>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  /** Starts `cmd` with stdout and stderr appended to `logFile`. */
  static async start(
    cmd: string,
    args: string[],
    opts: { logFile: string; env: NodeJS.ProcessEnv },
  ): Promise<ServiceProcess> {
    const fd = openSync(opts.logFile, 'a');
    try {
      const logStart = fstatSync(fd).size;
      const child = spawn(cmd, args, { env: opts.env, stdio: ['ignore', fd, fd] });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (error) =>
          reject(new Error(`could not start ${cmd}: ${error.message}`, { cause: error })),
        );
      });
      child.unref();
      return new ServiceProcess(child, opts.logFile, logStart);
    } finally {
      closeSync(fd);
    }
  }

  /** Whether the process has not exited yet. */
  get running(): boolean {
    return this.#exit === undefined;
  }

  /** How the process ended, once it has. */
  get exit(): ServiceExit | undefined {
    return this.#exit;
  }

  /** The end of what this process wrote to the log file, for error messages. */
  logTail(max = 3000): string {
    try {
      return tail(readFileSync(this.#logFile).subarray(this.#logStart).toString('utf8'), max);
    } catch {
      return '';
    }
  }

  /**
   * Sends `signal` and waits for the process to exit; after `timeoutMs` sends SIGKILL and waits
   * again. Resolves at once when it has exited already.
   */
  async stop(signal: NodeJS.Signals, timeoutMs = 30_000): Promise<ServiceExit> {
    if (this.#exit) return this.#exit;
    this.#child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), timeoutMs);
    });
    const outcome = await Promise.race([this.exited, late]);
    clearTimeout(timer);
    if (outcome !== 'late') return outcome;
    this.#child.kill('SIGKILL');
    return this.exited;
  }

  /**
   * Synchronous stop for a process 'exit' handler, where no promise settles any more: sends
   * `signal`, polls for up to `timeoutMs`, then sends SIGKILL.
   */
  stopSync(signal: NodeJS.Signals, timeoutMs = 5_000): void {
    if (this.#exit) return;
    try {
      process.kill(this.pid, signal);
    } catch {
      return;
    }
    const deadline = Date.now() + timeoutMs;
    while (aliveSync(this.pid) && Date.now() < deadline) sleepSync(20);
    if (aliveSync(this.pid)) {
      try {
        process.kill(this.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }
}
