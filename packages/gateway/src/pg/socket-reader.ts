import type { Socket } from 'node:net';
import { PortcullisError } from '@portcullis/core';
import { decodeStartupPacket, type StartupPacket } from '@portcullis/protocol-pg';

/** Bytes a reader holds before it stops reading from the socket. */
const MAX_BUFFERED_BYTES = 64 * 1024;

/**
 * Reads whole handshake messages from a socket with promises. Only the login phase of either
 * side uses it; once a session relays, the FrameScanner takes over the socket's bytes.
 */
export class SocketReader {
  #socket: Socket;
  readonly #peer: string;
  #buffer: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | null = null;
  #error: Error | null = null;
  readonly #onData = (chunk: Buffer): void => {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    // A peer that sends ahead (or floods) during login must not grow memory without bound:
    // stop reading until a read consumes what is here. The relay resumes the socket.
    if (this.#buffer.length > MAX_BUFFERED_BYTES) this.#socket.pause();
    this.#wake();
  };
  readonly #onError = (err: Error): void => this.fail(err);
  readonly #onClose = (): void =>
    this.fail(new Error(`${this.#peer} closed the connection during login`));

  /** `peer` names the other side in error messages ('client' or 'upstream'). */
  constructor(socket: Socket, peer: string) {
    this.#socket = socket;
    this.#peer = peer;
    this.attach(socket);
    socket.once('connect', () => this.#wake());
  }

  /** Bytes received and not yet consumed. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /** Starts reading from `socket` (after a TLS upgrade, the secure socket). */
  attach(socket: Socket): void {
    this.#socket = socket;
    socket.on('data', this.#onData);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  /** Stops reading; the socket's later bytes go to whoever listens next. */
  detach(): void {
    this.#socket.off('data', this.#onData);
    this.#socket.off('error', this.#onError);
    this.#socket.off('close', this.#onClose);
  }

  /** Makes the pending and every later read reject with `err`; the caller closes the socket. */
  fail(err: Error): void {
    this.#error ??= err;
    this.#wake();
  }

  async connected(): Promise<void> {
    await this.#until(() => !this.#socket.connecting);
  }

  /** Waits for `event` on the current socket (e.g. a TLS handshake's end). */
  async event(event: string): Promise<void> {
    let fired = false;
    this.#socket.once(event, () => {
      fired = true;
      this.#wake();
    });
    await this.#until(() => fired);
  }

  async readBytes(n: number): Promise<Buffer> {
    await this.#until(() => this.#buffer.length >= n);
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  /** Reads an untyped startup-phase packet (StartupMessage, SSLRequest, CancelRequest, …). */
  async readStartupPacket(): Promise<StartupPacket> {
    let decoded: ReturnType<typeof decodeStartupPacket> = null;
    await this.#until(() => (decoded = decodeStartupPacket(this.#buffer)) !== null);
    const { packet, used } = decoded!;
    this.#buffer = this.#buffer.subarray(used);
    return packet;
  }

  /** Reads one typed frame; the returned buffers are the reader's own. */
  async readFrame(maxFrameBytes: number): Promise<{ type: number; frame: Buffer; body: Buffer }> {
    await this.#until(() => this.#buffer.length >= 5);
    const length = this.#buffer.readInt32BE(1);
    if (length < 4 || length - 4 > maxFrameBytes) {
      throw new PortcullisError(
        length < 4 ? 'PCL_ERR_PROTOCOL_MALFORMED' : 'PCL_ERR_PROTOCOL_FRAME_TOO_LARGE',
        `${this.#peer} sent a frame of invalid length ${length} during login`,
      );
    }
    await this.#until(() => this.#buffer.length >= length + 1);
    const frame = Buffer.from(this.#buffer.subarray(0, length + 1));
    this.#buffer = this.#buffer.subarray(length + 1);
    return { type: frame[0]!, frame, body: frame.subarray(5) };
  }

  /** Hands over the unconsumed bytes. */
  takeRest(): Buffer {
    const rest = this.#buffer;
    this.#buffer = Buffer.alloc(0);
    return rest;
  }

  async #until(ready: () => boolean): Promise<void> {
    for (;;) {
      if (this.#error !== null) throw this.#error;
      if (ready()) return;
      // More bytes are needed than the cap allowed in: read on (each message has its own limit).
      if (this.#socket.isPaused()) this.#socket.resume();
      await new Promise<void>((resolveWait) => {
        this.#waiter = resolveWait;
      });
      this.#waiter = null;
    }
  }

  #wake(): void {
    this.#waiter?.();
  }
}
