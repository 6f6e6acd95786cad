/**
 * The one list of Portcullis error codes. Every error the gateway raises carries one of these
 * codes; `docs/errors.md` documents each, and a test keeps the two in step.
 */
export const errorCatalog = {
  PCL_ERR_CONFIG_INVALID: {
    retriable: false,
    summary: 'The configuration file failed validation.',
  },
  PCL_ERR_CONFIG_READ: { retriable: false, summary: 'The configuration file could not be read.' },
  PCL_ERR_CONFIG_SECRET: {
    retriable: false,
    summary: 'A secret named in the configuration (file or environment variable) is missing.',
  },
  PCL_ERR_PROTOCOL_MALFORMED: {
    retriable: false,
    summary: 'A peer sent bytes that are not valid PostgreSQL protocol.',
  },
  PCL_ERR_PROTOCOL_FRAME_TOO_LARGE: {
    retriable: false,
    summary: 'A frame announced a length above the configured frame limit.',
  },
  PCL_ERR_PROTOCOL_UNSUPPORTED: {
    retriable: false,
    summary: 'The peer asked for a protocol version or feature the gateway does not speak.',
  },
  PCL_ERR_PROTOCOL_SCANNER_FAILED: {
    retriable: false,
    summary: 'A frame scanner was used after it had already failed.',
  },
  PCL_ERR_AUTH_FAILED: { retriable: false, summary: 'The client presented an unknown token.' },
  PCL_ERR_AUTH_TLS_REQUIRED: {
    retriable: false,
    summary: 'The client tried a cleartext password exchange on a listener that requires TLS.',
  },
  PCL_ERR_AUTH_FORBIDDEN: {
    retriable: false,
    summary: 'The person is not allowed to use the requested resource.',
  },
  PCL_ERR_RESOURCE_UNKNOWN: {
    retriable: false,
    summary: 'The requested resource is not configured.',
  },
  PCL_ERR_UPSTREAM_CONNECT: {
    retriable: true,
    summary: 'The gateway could not connect or authenticate to the upstream server.',
  },
  PCL_ERR_UPSTREAM_AUTH: {
    retriable: false,
    summary: 'The upstream server rejected or asked for an unsupported authentication method.',
  },
  PCL_ERR_UPSTREAM_LOST: { retriable: true, summary: 'The upstream connection ended mid-session.' },
  PCL_ERR_CLIENT_SLOW: {
    retriable: true,
    summary: 'A client stopped reading and its buffered output passed the configured bound.',
  },
  PCL_ERR_LIMIT_CONNECTIONS: {
    retriable: true,
    summary: 'The listener is at its configured connection limit.',
  },
  PCL_ERR_MASKING_FAILED: {
    retriable: true,
    summary:
      'A masking worker failed, crashed or ran past its time limit, so the result was withheld.',
  },
  PCL_ERR_EVENTS_WRITE: { retriable: true, summary: 'The event sink could not write events.' },
  PCL_ERR_EVENTS_READ: { retriable: false, summary: 'The event store could not be read.' },
  PCL_ERR_SPOOL_FULL: {
    retriable: true,
    summary:
      'The event spool reached its size limit or the disk is full, so the event was not recorded.',
  },
} as const satisfies Record<string, { retriable: boolean; summary: string }>;

/** Every error code Portcullis raises. */
export type ErrorCode = keyof typeof errorCatalog;

/** An error with a stable code, a retriable flag and an optional cause from a lower layer. */
export class PortcullisError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortcullisError';
    this.code = code;
    this.retriable = errorCatalog[code].retriable;
  }
}

/** True when `err` is a PortcullisError, optionally with the given code. */
export function isPortcullisError(err: unknown, code?: ErrorCode): err is PortcullisError {
  return err instanceof PortcullisError && (code === undefined || err.code === code);
}
