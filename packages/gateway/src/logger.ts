import { pino } from 'pino';
import type { Logger } from '@portcullis/core';

/**
 * The gateway's logger: JSON lines on stderr. Token and password fields are redacted
 * should any ever reach a log call.
 */
export function createLogger(level: string): Logger & { level: string } {
  return pino(
    {
      level,
      base: { pid: process.pid },
      redact: {
        paths: ['password', '*.password', 'token', '*.token', 'secret', '*.secret'],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}
