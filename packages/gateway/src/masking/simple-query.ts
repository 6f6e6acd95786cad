import type { Socket } from 'node:net';
import { PortcullisError } from '@portcullis/core';
import {
  BackendCode,
  FrameScanner,
  decodeDataRow,
  decodeErrorFields,
  decodeReadyForQuery,
  decodeRowDescription,
  query,
  type ErrorFields,
  type RowField,
} from '@portcullis/protocol-pg';

/** Options of {@link runSimpleQuery}. */
export interface SimpleQueryOptions {
  /** Largest frame body accepted from the server, in bytes. */
  readonly maxFrameBytes: number;
  /** How long to wait for ReadyForQuery, in milliseconds. */
  readonly timeoutMs: number;
  /**
   * Bytes already read from the socket that belong before the answer (the `leftover` of
   * `connectUpstream` or of an earlier call); scanned first.
   */
  readonly pending?: Buffer;
}

/** The rows one statement returned. */
export interface ResultSet {
  /** The RowDescription's fields (name, table OID and attribute number, type…). */
  readonly fields: readonly RowField[];
  readonly columns: readonly string[];
  /** Text values, null for SQL NULL. */
  readonly rows: readonly (readonly (string | null)[])[];
}

/** What {@link runSimpleQuery} read up to and including ReadyForQuery. */
export interface SimpleQueryResult {
  /** Column names of the last result set; empty when no statement returned rows. */
  readonly columns: readonly string[];
  /** Rows of the last result set. */
  readonly rows: readonly (readonly (string | null)[])[];
  /** Every result set, one per statement that returned rows (a RowDescription), in order. */
  readonly resultSets: readonly ResultSet[];
  /** Transaction status after the query: `I` idle, `T` in a block, `E` in a failed block. */
  readonly status: 'I' | 'T' | 'E';
  /** ParameterStatus frames the server sent meanwhile (copies), for a session to forward. */
  readonly parameterFrames: readonly Buffer[];
  /**
   * Bytes that arrived after ReadyForQuery (normally none): they belong to whoever reads the
   * socket next. A view of the last chunk read.
   */
  readonly leftover: Buffer;
}

/** The server answered with an ErrorResponse; `fields.code` is its SQLSTATE. */
export class UpstreamQueryError extends PortcullisError {
  readonly fields: ErrorFields;

  constructor(fields: ErrorFields) {
    // No dedicated code yet: an upstream that refuses the gateway's own query is as unusable
    // to the caller as one it cannot log in to.
    super('PCL_ERR_UPSTREAM_CONNECT', `upstream query failed: ${fields.code} ${fields.message}`);
    this.name = 'UpstreamQueryError';
    this.fields = fields;
  }
}

/** Frames whose bodies are decoded, so assembled whole when they span chunks. */
const DECODED = [
  BackendCode.RowDescription,
  BackendCode.DataRow,
  BackendCode.ErrorResponse,
  BackendCode.ParameterStatus,
  BackendCode.ReadyForQuery,
];

/** Thrown by the frame handler at ReadyForQuery to stop the scan. */
const STOP = Symbol('ReadyForQuery');

/** Frames a simple query's answer may hold that carry nothing for the caller. */
const IGNORED = new Set<number>([
  BackendCode.CommandComplete,
  BackendCode.EmptyQueryResponse,
  BackendCode.NoticeResponse,
  BackendCode.NotificationResponse,
]);

/**
 * Sends `sql` as one simple Query over an upstream socket that is logged in and idle, and
 * reads the answer up to ReadyForQuery: the rows as text, the status, and any bytes that came
 * after (`leftover`), never consuming more. Runs several statements when `sql` holds several
 * (one implicit transaction), returning each result set.
 *
 * The socket's listeners are removed when the call settles and the socket is left paused, so
 * the next reader attaches its own and calls `resume()`. An ErrorResponse rejects with an
 * {@link UpstreamQueryError} once ReadyForQuery has arrived, the socket still usable. A socket
 * that closes or errors, a timeout, a malformed or oversized frame, or COPY (which a simple
 * query here never starts) reject with a PortcullisError and destroy the socket: its state is
 * unknown.
 */
export function runSimpleQuery(
  socket: Socket,
  sql: string,
  options: SimpleQueryOptions,
): Promise<SimpleQueryResult> {
  return new Promise<SimpleQueryResult>((resolve, reject) => {
    if (sql.includes('\0')) {
      reject(new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'a query cannot contain NUL'));
      return;
    }
    const resultSets: ResultSet[] = [];
    const parameterFrames: Buffer[] = [];
    let current: { fields: RowField[]; rows: (string | null)[][] } | null = null;
    let error: ErrorFields | null = null;
    let ready: 'I' | 'T' | 'E' | null = null;
    let readyEnd = 0;
    let settled = false;

    const scanner = new FrameScanner(
      {
        onFrame(type, body, start, end) {
          switch (type) {
            case BackendCode.RowDescription:
              current = { fields: decodeRowDescription(body, start, end), rows: [] };
              resultSets.push({
                fields: current.fields,
                columns: current.fields.map((f) => f.name),
                rows: current.rows,
              });
              break;
            case BackendCode.DataRow:
              if (current === null) throw unexpected(type);
              current.rows.push(decodeDataRow(body, start, end));
              break;
            case BackendCode.ErrorResponse:
              error ??= decodeErrorFields(body, start, end);
              break;
            case BackendCode.ParameterStatus:
              parameterFrames.push(frameCopy(type, body, start, end));
              break;
            case BackendCode.ReadyForQuery:
              ready = decodeReadyForQuery(body, start, end);
              readyEnd = scanner.frameEndInChunk;
              // Stop the scan here: what follows in the chunk belongs to the next reader.
              throw STOP;
            default:
              if (type === BackendCode.CommandComplete) current = null;
              if (!IGNORED.has(type)) throw unexpected(type);
          }
        },
      },
      { maxFrameBytes: options.maxFrameBytes, assemble: DECODED },
    );

    const detach = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
    };
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      detach();
      socket.destroy();
      reject(err);
    };
    const finish = (status: 'I' | 'T' | 'E', leftover: Buffer): void => {
      settled = true;
      socket.pause();
      detach();
      if (error !== null) {
        reject(new UpstreamQueryError(error));
        return;
      }
      const last = resultSets.at(-1);
      resolve({
        columns: last?.columns ?? [],
        rows: last?.rows ?? [],
        resultSets,
        status,
        parameterFrames,
        leftover,
      });
    };
    const push = (chunk: Buffer): void => {
      try {
        scanner.push(chunk);
      } catch (err) {
        if (err === STOP) {
          finish(ready!, chunk.subarray(readyEnd));
          return;
        }
        fail(
          err instanceof PortcullisError
            ? err
            : new PortcullisError('PCL_ERR_PROTOCOL_MALFORMED', 'bad answer to a query', {
                cause: err,
              }),
        );
      }
    };
    const onData = (chunk: Buffer): void => push(chunk);
    const onError = (err: Error): void =>
      fail(new PortcullisError('PCL_ERR_UPSTREAM_LOST', `upstream socket error: ${err.message}`));
    const onClose = (): void => {
      // A FATAL error (shutdown, terminated backend) comes just before the close.
      const why = error === null ? '' : `: ${error.code} ${error.message}`;
      fail(new PortcullisError('PCL_ERR_UPSTREAM_LOST', `upstream closed the connection${why}`));
    };
    const timer = setTimeout(() => {
      fail(
        new PortcullisError(
          'PCL_ERR_UPSTREAM_LOST',
          `upstream did not answer a query within ${options.timeoutMs} ms`,
        ),
      );
    }, options.timeoutMs);

    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
    if (socket.destroyed) {
      fail(new PortcullisError('PCL_ERR_UPSTREAM_LOST', 'upstream connection already closed'));
      return;
    }
    socket.write(query(sql));
    socket.resume();
    if (options.pending !== undefined && options.pending.length > 0) push(options.pending);
  });
}

function unexpected(type: number): PortcullisError {
  return new PortcullisError(
    'PCL_ERR_PROTOCOL_UNSUPPORTED',
    `upstream sent message type ${JSON.stringify(String.fromCharCode(type))} in answer to a query`,
  );
}

function frameCopy(type: number, body: Buffer, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(5 + end - start);
  out[0] = type;
  out.writeInt32BE(4 + end - start, 1);
  body.copy(out, 5, start, end);
  return out;
}
