// A raw PostgreSQL wire-protocol client for integration tests: sends hand-made (or malformed)
// bytes and reads the replies as typed messages, using @portcullis/protocol-pg's builders and
// FrameScanner. It knows nothing the tests should be checking: it decodes, it does not judge.
import { connect as netConnect, type Socket } from 'node:net';
import {
  BackendCode,
  FrameScanner,
  StartupCode,
  cancelRequest,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeCommandComplete,
  decodeErrorFields,
  decodeParameterStatus,
  passwordMessage,
  query,
  startupMessage,
  type ErrorFields,
} from '@portcullis/protocol-pg';

/** One message the server sent. */
export interface PgMessage {
  /** The type byte as a character, e.g. `E`, `Z`, `D`. */
  readonly type: string;
  readonly body: Buffer;
}

/** What {@link RawPgClient.query} collected up to ReadyForQuery. */
export interface RawQueryResult {
  /** DataRows of every result set, as text (null for SQL NULL). */
  readonly rows: (string | null)[][];
  /** Command tags in order. */
  readonly tags: string[];
  readonly errors: ErrorFields[];
  readonly notices: ErrorFields[];
  /** Transaction status from ReadyForQuery. */
  readonly status: string;
  readonly messages: PgMessage[];
}

const ALL_TYPES = Array.from({ length: 256 }, (_, i) => i);

/** A raw protocol connection to a PostgreSQL server (or the gateway). */
export class RawPgClient {
  #socket: Socket;
  /** Bytes received before the first typed read (single-byte answers to SSLRequest & co). */
  #pending: Buffer = Buffer.alloc(0);
  #framed = false;
  readonly #scanner: FrameScanner;
  readonly #queue: PgMessage[] = [];
  #rowSink: ((body: Buffer, start: number, end: number) => void) | null = null;
  #waiter: (() => void) | null = null;
  #closed = false;
  #error: Error | null = null;
  readonly #closedPromise: Promise<void>;

  private constructor(socket: Socket) {
    this.#socket = socket;
    this.#scanner = new FrameScanner(
      {
        onFrame: (type, body, start, end) => {
          if (type === BackendCode.DataRow && this.#rowSink !== null) {
            this.#rowSink(body, start, end);
            return;
          }
          this.#queue.push({
            type: String.fromCharCode(type),
            body: Buffer.from(body.subarray(start, end)),
          });
        },
      },
      { maxFrameBytes: 1024 ** 3, assemble: ALL_TYPES },
    );
    socket.on('data', (chunk: Buffer) => {
      if (this.#framed) {
        try {
          this.#scanner.push(chunk);
        } catch (err) {
          this.#error ??= err as Error;
        }
      } else {
        this.#pending = Buffer.concat([this.#pending, chunk]);
      }
      this.#wake();
    });
    socket.on('error', (err) => {
      this.#error ??= err;
      this.#wake();
    });
    this.#closedPromise = new Promise((resolveClosed) => {
      socket.on('close', () => {
        this.#closed = true;
        this.#wake();
        resolveClosed();
      });
    });
  }

  /** Opens a TCP connection. */
  static async connect(port: number, host = '127.0.0.1'): Promise<RawPgClient> {
    const socket = netConnect({ host, port, noDelay: true });
    await new Promise<void>((resolveConnect, reject) => {
      socket.once('connect', resolveConnect);
      socket.once('error', reject);
    });
    return new RawPgClient(socket);
  }

  get socket(): Socket {
    return this.#socket;
  }

  /** True once the server (or this side) closed the connection. */
  get closed(): boolean {
    return this.#closed;
  }

  write(...buffers: Buffer[]): void {
    this.#socket.write(buffers.length === 1 ? buffers[0]! : Buffer.concat(buffers));
  }

  /** Stops reading from the socket (the kernel buffers fill, then the sender blocks). */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** Sends FIN. */
  end(data?: Buffer): void {
    if (data === undefined) this.#socket.end();
    else this.#socket.end(data);
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** Resolves when the connection is closed; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = 10_000): Promise<void> {
    await withTimeout(this.#closedPromise, timeoutMs, 'the connection to close');
  }

  /** Reads one raw byte (the answer to SSLRequest or GSSENCRequest), before any typed read. */
  async readByte(timeoutMs = 10_000): Promise<string> {
    if (this.#framed) throw new Error('readByte() after typed reads');
    await this.#until(() => this.#pending.length > 0, timeoutMs, 'a one-byte answer');
    const byte = this.#pending.subarray(0, 1).toString('latin1');
    this.#pending = this.#pending.subarray(1);
    return byte;
  }

  /** Reads the next typed message. */
  async next(timeoutMs = 10_000): Promise<PgMessage> {
    this.#frame();
    await this.#until(() => this.#queue.length > 0, timeoutMs, 'a message');
    return this.#queue.shift()!;
  }

  /** Reads the next message, or null when the connection closed first. */
  async nextOrClose(timeoutMs = 10_000): Promise<PgMessage | null> {
    this.#frame();
    await this.#until(
      () => this.#queue.length > 0 || this.#closed || this.#error !== null,
      timeoutMs,
      'a message or the close',
      false,
    );
    return this.#queue.shift() ?? null;
  }

  /** Reads messages until (and including) one of type `type`. */
  async readUntil(type: string, timeoutMs = 10_000): Promise<PgMessage[]> {
    const messages: PgMessage[] = [];
    for (;;) {
      const message = await this.next(timeoutMs);
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  /** Reads every message until the server closes the connection. */
  async readAllUntilClose(timeoutMs = 10_000): Promise<PgMessage[]> {
    const messages: PgMessage[] = [];
    for (;;) {
      const message = await this.nextOrClose(timeoutMs);
      if (message === null) return messages;
      messages.push(message);
    }
  }

  /** Sends a StartupMessage (protocol 3.`minor`). */
  startup(params: Record<string, string>, minor = 0): void {
    const packet = startupMessage(params);
    if (minor !== 0) packet.writeInt32BE(StartupCode.Protocol3 | minor, 4);
    this.write(packet);
  }

  /**
   * Logs in with a cleartext password (the gateway's only client method): startup, password,
   * then everything up to ReadyForQuery. Throws with the server's error fields on refusal.
   */
  async login(opts: {
    user?: string;
    database: string;
    password: string;
    params?: Record<string, string>;
  }): Promise<{ processId: number; secretKey: number; parameters: Map<string, string> }> {
    this.startup({ user: opts.user ?? 'someone', database: opts.database, ...opts.params });
    const ask = await this.next();
    if (ask.type === 'E') throw serverError(ask);
    const auth = expectType(ask, 'R');
    if (decodeAuthentication(auth.body, 0, auth.body.length).kind !== 'cleartext') {
      throw new Error(`expected AuthenticationCleartextPassword, got ${auth.body.toString('hex')}`);
    }
    this.write(passwordMessage(opts.password));
    const parameters = new Map<string, string>();
    let key = { processId: 0, secretKey: 0 };
    for (;;) {
      const message = await this.next();
      if (message.type === 'E') throw serverError(message);
      if (message.type === 'S') {
        const { name, value } = decodeParameterStatus(message.body, 0, message.body.length);
        parameters.set(name, value);
      } else if (message.type === 'K') {
        key = decodeBackendKeyData(message.body, 0, message.body.length);
      } else if (message.type === 'Z') {
        return { ...key, parameters };
      }
    }
  }

  /** Sends a simple Query and collects everything up to ReadyForQuery. */
  async query(sql: string, timeoutMs = 10_000): Promise<RawQueryResult> {
    this.write(query(sql));
    return this.collect(timeoutMs);
  }

  /** Collects messages up to ReadyForQuery (after the caller sent a query or a Sync). */
  async collect(timeoutMs = 10_000): Promise<RawQueryResult> {
    const rows: (string | null)[][] = [];
    const tags: string[] = [];
    const errors: ErrorFields[] = [];
    const notices: ErrorFields[] = [];
    const messages: PgMessage[] = [];
    for (;;) {
      const message = await this.next(timeoutMs);
      messages.push(message);
      const { body } = message;
      switch (message.type) {
        case 'D':
          rows.push(decodeDataRow(body));
          break;
        case 'C':
          tags.push(decodeCommandComplete(body, 0, body.length));
          break;
        case 'E':
          errors.push(decodeErrorFields(body, 0, body.length));
          break;
        case 'N':
          notices.push(decodeErrorFields(body, 0, body.length));
          break;
        case 'Z':
          return { rows, tags, errors, notices, status: body.toString('latin1'), messages };
        default:
      }
    }
  }

  /**
   * Streams DataRows to `onRow` without keeping them (for results too large to hold) until
   * ReadyForQuery; returns the other messages.
   */
  async streamRows(
    onRow: (body: Buffer, start: number, end: number) => void,
    timeoutMs = 60_000,
  ): Promise<PgMessage[]> {
    this.#rowSink = onRow;
    try {
      return await this.readUntil('Z', timeoutMs);
    } finally {
      this.#rowSink = null;
    }
  }

  #frame(): void {
    if (this.#framed) return;
    this.#framed = true;
    const pending = this.#pending;
    this.#pending = Buffer.alloc(0);
    if (pending.length > 0) {
      try {
        this.#scanner.push(pending);
      } catch (err) {
        this.#error ??= err as Error;
      }
    }
  }

  async #until(
    ready: () => boolean,
    timeoutMs: number,
    what: string,
    failOnClose = true,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (ready()) return;
      if (this.#error !== null && failOnClose) throw this.#error;
      if (this.#closed && failOnClose)
        throw new Error(`connection closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise<void>((resolveWait) => {
        const timer = setTimeout(resolveWait, left);
        this.#waiter = () => {
          clearTimeout(timer);
          resolveWait();
        };
      });
      this.#waiter = null;
    }
  }

  #wake(): void {
    this.#waiter?.();
  }
}

/** The error fields of an ErrorResponse or NoticeResponse message. */
export function errorFields(message: PgMessage): ErrorFields {
  if (message.type !== 'E' && message.type !== 'N') {
    throw new Error(`expected an ErrorResponse, got message type ${message.type}`);
  }
  return decodeErrorFields(message.body, 0, message.body.length);
}

function serverError(message: PgMessage): Error & { fields: ErrorFields } {
  const fields = errorFields(message);
  return Object.assign(new Error(`${fields.severity} ${fields.code}: ${fields.message}`), {
    fields,
  });
}

function expectType(message: PgMessage, type: string): PgMessage {
  if (message.type !== type) {
    const detail =
      message.type === 'E'
        ? `: ${JSON.stringify(errorFields(message))}`
        : ` (${message.body.length} bytes)`;
    throw new Error(`expected message type ${type}, got ${message.type}${detail}`);
  }
  return message;
}

/** The columns of a DataRow as raw bytes. */
export function decodeDataRowBytes(body: Buffer): (Buffer | null)[] {
  const columns = body.readInt16BE(0);
  const out: (Buffer | null)[] = [];
  let pos = 2;
  for (let i = 0; i < columns; i++) {
    const length = body.readInt32BE(pos);
    pos += 4;
    if (length === -1) {
      out.push(null);
    } else {
      out.push(Buffer.from(body.subarray(pos, pos + length)));
      pos += length;
    }
  }
  return out;
}

/** The columns of a DataRow as text. */
export function decodeDataRow(body: Buffer): (string | null)[] {
  return decodeDataRowBytes(body).map((value) => (value === null ? null : value.toString('utf8')));
}

// --- Messages the protocol-pg builders do not cover (client side of the extended protocol). ---

function typed(type: string, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(5 + body.length);
  out.write(type, 0, 'latin1');
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function cstr(value: string): Buffer {
  return Buffer.from(`${value}\0`, 'utf8');
}

function i16(value: number): Buffer {
  const out = Buffer.alloc(2);
  out.writeInt16BE(value, 0);
  return out;
}

function i32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeInt32BE(value | 0, 0);
  return out;
}

/** Parse (`P`) with no parameter types given. */
export function parseMessage(name: string, sql: string): Buffer {
  return typed('P', cstr(name), cstr(sql), i16(0));
}

/** Bind (`B`) with text parameters; results in text, or all in binary when `binary`. */
export function bindMessage(
  portal: string,
  statement: string,
  values: (string | null)[],
  binary = false,
): Buffer {
  const params = values.map((v) =>
    v === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(v)), Buffer.from(v, 'utf8')]),
  );
  const results = binary ? [i16(1), i16(1)] : [i16(0)];
  return typed(
    'B',
    cstr(portal),
    cstr(statement),
    i16(0),
    i16(values.length),
    ...params,
    ...results,
  );
}

/** Describe (`D`) a portal or statement. */
export function describeMessage(kind: 'P' | 'S', name: string): Buffer {
  return typed('D', Buffer.from(kind, 'latin1'), cstr(name));
}

/** Execute (`E`). */
export function executeMessage(portal: string, maxRows = 0): Buffer {
  return typed('E', cstr(portal), i32(maxRows));
}

/** Sync (`S`). */
export const syncMessage: Buffer = typed('S');

/** FunctionCall (`F`) with text arguments and a text result. */
export function functionCallMessage(oid: number, args: (string | null)[]): Buffer {
  const values = args.map((v) =>
    v === null ? i32(-1) : Buffer.concat([i32(Buffer.byteLength(v)), Buffer.from(v, 'utf8')]),
  );
  return typed('F', i32(oid), i16(0), i16(args.length), ...values, i16(0));
}

/** Any typed frame, for malformed input. */
export function rawFrame(type: number, body: Buffer, announcedLength = body.length + 4): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(announcedLength, 1);
  body.copy(out, 5);
  return out;
}

/** GSSENCRequest (untyped). */
export const gssencRequestPacket: Buffer = Buffer.concat([i32(8), i32(StartupCode.GSSENCRequest)]);

/** A protocol 2.0 startup packet (fixed 296 bytes: length, version, database, user, …). */
export function protocol2StartupPacket(user: string, database: string): Buffer {
  const out = Buffer.alloc(296);
  out.writeInt32BE(296, 0);
  out.writeInt32BE(2 << 16, 4);
  out.write(database, 8, 'latin1');
  out.write(user, 72, 'latin1');
  return out;
}

/** Sends a CancelRequest on a new connection and waits until the server closes it. */
export async function sendCancelRequest(
  port: number,
  processId: number,
  secretKey: number,
  host = '127.0.0.1',
): Promise<void> {
  const client = await RawPgClient.connect(port, host);
  client.write(cancelRequest(processId, secretKey));
  await client.waitClosed(10_000);
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
