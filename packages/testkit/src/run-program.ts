import { spawn } from 'node:child_process';

/** Options for {@link runProgram}. */
export interface RunProgramOptions {
  /** Environment of the program; defaults to the current process environment. */
  env?: NodeJS.ProcessEnv;
  /** Kill the program (SIGKILL) and reject after this many milliseconds. No limit by default. */
  timeoutMs?: number;
  /** Text written to the program's standard input, which is then closed. */
  input?: string;
}

/** What a program that exited with status 0 printed. */
export interface RunProgramResult {
  stdout: string;
  stderr: string;
  /** The exit status; always 0, since other statuses reject. */
  code: number;
}

/** The last `max` characters of `text`, trimmed, for error messages. */
export function tail(text: string, max = 4000): string {
  const trimmed = text.trim();
  return trimmed.length <= max ? trimmed : `...${trimmed.slice(-max)}`;
}

/**
 * Runs a program to completion, capturing stdout/stderr.
 *
 * Rejects when the program cannot be started, exits with a non-zero status, is killed by a
 * signal or runs past `timeoutMs`; the error message names the command and includes stderr.
 */
export async function runProgram(
  cmd: string,
  args: string[],
  opts: RunProgramOptions = {},
): Promise<RunProgramResult> {
  const display = [cmd, ...args].join(' ');
  return new Promise<RunProgramResult>((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.on('error', (error) => {
      if (timer !== undefined) clearTimeout(timer);
      reject(new Error(`could not run \`${display}\`: ${error.message}`, { cause: error }));
    });
    child.on('close', (code, signal) => {
      if (timer !== undefined) clearTimeout(timer);
      const out = Buffer.concat(stdout).toString('utf8');
      const err = Buffer.concat(stderr).toString('utf8');
      if (code === 0) {
        resolve({ stdout: out, stderr: err, code });
        return;
      }
      const how = timedOut
        ? `timed out after ${opts.timeoutMs} ms`
        : signal !== null
          ? `was killed by ${signal}`
          : `exited with status ${code}`;
      const detail = tail(err) || tail(out);
      reject(new Error(`\`${display}\` ${how}${detail ? `:\n${detail}` : ''}`));
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {
        // The program may exit without reading its input; its exit status tells what happened.
      });
      child.stdin.end(opts.input);
    }
  });
}
