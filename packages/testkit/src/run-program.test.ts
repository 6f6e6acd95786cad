import { describe, expect, it } from 'vitest';
import { freePort } from './free-port.js';
import { runProgram } from './run-program.js';

describe('runProgram', () => {
  it('captures stdout and stderr and feeds input', async () => {
    const result = await runProgram('sh', ['-c', 'cat; echo oops >&2'], { input: 'hello\n' });
    expect(result).toEqual({ stdout: 'hello\n', stderr: 'oops\n', code: 0 });
  });

  it('rejects on a non-zero exit with stderr in the message', async () => {
    await expect(runProgram('sh', ['-c', 'echo broken pipe dream >&2; exit 3'])).rejects.toThrow(
      /exited with status 3:\nbroken pipe dream/,
    );
  });

  it('rejects when the program does not exist', async () => {
    await expect(runProgram('/nonexistent/program', [])).rejects.toThrow(/could not run/);
  });

  it('kills a program that runs past the timeout', async () => {
    await expect(runProgram('sleep', ['10'], { timeoutMs: 100 })).rejects.toThrow(
      /timed out after 100 ms/,
    );
  });

  it('passes the given environment', async () => {
    const { stdout } = await runProgram('sh', ['-c', 'echo "$GREETING"'], {
      env: { PATH: process.env['PATH'], GREETING: 'hi' },
    });
    expect(stdout).toBe('hi\n');
  });
});

describe('freePort', () => {
  it('returns a port that can be bound on loopback', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });
});
