import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { ScramClient } from '@portcullis/core';
import { decodeApiVersionsResponse, encodeApiVersionsRequest } from './api-versions.js';
import { FrameDecoder } from './frame-decoder.js';
import { chooseVersion, KAFKA_APIS, type ApiVersionRange, type KafkaApi } from './kafka-apis.js';
import { KafkaClientError } from './kafka-client-error.js';
import { KafkaErrorCode, kafkaErrorName } from './kafka-error-codes.js';
import { ProtocolReader } from './protocol-reader.js';
import {
  decodeSaslAuthenticateResponse,
  decodeSaslHandshakeResponse,
  encodeSaslAuthenticateRequest,
  encodeSaslHandshakeRequest,
} from './sasl-messages.js';

/** SASL credentials: the mechanisms Kafka brokers commonly enable with user names and passwords. */
export interface KafkaSasl {
  readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
  readonly username: string;
  readonly password: string;
}

/** Options of {@link KafkaConnection.open}. */
export interface KafkaConnectionOptions {
  readonly host: string;
  readonly port: number;
  /** Sent in every request header; brokers log it and apply quotas by it. */
  readonly clientId: string;
  /** TLS: `true` for the system CAs, or Node TLS options (CA, client certificate), passed through. */
  readonly ssl?: boolean | ConnectionOptions | undefined;
  readonly sasl?: KafkaSasl | undefined;
  /** Time for TCP (and TLS) to connect. */
  readonly connectionTimeoutMs: number;
  /** Time for each request's answer, unless the request says otherwise. */
  readonly requestTimeoutMs: number;
  /** Largest response accepted (default 64 MiB): a bigger size prefix is a broken stream. */
  readonly maxResponseBytes?: number;
}

const SASL_MECHANISM_NAMES = {
  plain: 'PLAIN',
  'scram-sha-256': 'SCRAM-SHA-256',
  'scram-sha-512': 'SCRAM-SHA-512',
} as const;

interface PendingRequest {
  readonly correlationId: number;
  readonly api: KafkaApi;
  readonly decode: (reader: ProtocolReader) => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: KafkaClientError) => void;
  readonly timer: NodeJS.Timeout;
}

function connectSocket(options: KafkaConnectionOptions, address: string): Promise<Socket> {
  const { host, port, ssl } = options;
  return new Promise((resolve, reject) => {
    let socket: Socket;
    if (ssl === undefined || ssl === false) {
      socket = netConnect({ host, port });
    } else {
      const tls: ConnectionOptions = ssl === true ? {} : ssl;
      socket = tlsConnect({
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ...tls,
        host,
        port,
      });
    }
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new KafkaClientError(
          'unreachable',
          `cannot connect to Kafka broker ${address}: no connection within ${options.connectionTimeoutMs} ms`,
          { broker: address },
        ),
      );
    }, options.connectionTimeoutMs);
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new KafkaClientError(
          'unreachable',
          `cannot connect to Kafka broker ${address}: ${err.message}`,
          {
            broker: address,
            cause: err,
          },
        ),
      );
    };
    socket.once('error', onError);
    socket.once(ssl === undefined || ssl === false ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/**
 * One connection to a Kafka broker: TCP or TLS, the broker's API versions (ApiVersions v2), SASL
 * (PLAIN, SCRAM-SHA-256/512 with the server's signature checked), then requests with
 * correlation ids, answered in order. Each request has a timeout; a request that times out, a
 * response that cannot be decoded, or the socket closing fails every request still waiting and
 * closes the connection for good (the producer opens a new one).
 *
 * Passwords go to the broker only inside the SASL exchange and appear in no error or log line.
 */
export class KafkaConnection {
  /** `host:port`. */
  readonly address: string;
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #clientIdField: Buffer;
  readonly #requestTimeoutMs: number;
  readonly #pending: PendingRequest[] = [];
  #correlationId = 0;
  #failure: KafkaClientError | null = null;
  #versions: ReadonlyMap<number, ApiVersionRange> = new Map();
  #sessionExpiresAt = Number.POSITIVE_INFINITY;

  /** Connects, learns the broker's API versions and authenticates. */
  static async open(options: KafkaConnectionOptions): Promise<KafkaConnection> {
    const address = `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`;
    const socket = await connectSocket(options, address);
    const connection = new KafkaConnection(socket, address, options);
    try {
      await connection.#handshake(options.sasl);
    } catch (err) {
      connection.close();
      throw err;
    }
    return connection;
  }

  private constructor(socket: Socket, address: string, options: KafkaConnectionOptions) {
    this.address = address;
    this.#socket = socket;
    this.#requestTimeoutMs = options.requestTimeoutMs;
    const clientId = Buffer.from(options.clientId, 'utf8');
    this.#clientIdField = Buffer.allocUnsafe(2 + clientId.length);
    this.#clientIdField.writeInt16BE(clientId.length, 0);
    clientId.copy(this.#clientIdField, 2);
    this.#decoder = new FrameDecoder(options.maxResponseBytes ?? 64 * 1024 * 1024, (frame) =>
      this.#onFrame(frame),
    );
    socket.on('data', (chunk: Buffer) => {
      try {
        this.#decoder.push(chunk);
      } catch (err) {
        this.#fail(this.#malformed('a response', err));
      }
    });
    let socketError: Error | null = null;
    socket.on('error', (err) => {
      socketError = err;
    });
    socket.on('close', () => {
      const why = socketError === null ? '' : `: ${socketError.message}`;
      this.#fail(
        new KafkaClientError('closed', `connection to Kafka broker ${address} closed${why}`, {
          broker: address,
          cause: socketError ?? undefined,
        }),
      );
    });
  }

  /** The API versions the broker offers. */
  get versions(): ReadonlyMap<number, ApiVersionRange> {
    return this.#versions;
  }

  /**
   * Whether requests can still be sent: open, and not past the SASL session lifetime the broker
   * set (it would close the connection then; a new connection authenticates again).
   */
  get usable(): boolean {
    return this.#failure === null && Date.now() < this.#sessionExpiresAt;
  }

  /** The highest version of `api` this client and the broker both speak; throws if none. */
  versionOf(api: KafkaApi): number {
    return chooseVersion(api, this.#versions, this.address);
  }

  /**
   * Sends a request (`body` as one buffer or as chunks written back to back) and resolves with
   * `decode` applied to the response body. Fails with a `timeout` error after `timeoutMs`, a
   * `closed` error when the connection ends first, a `malformed` one when `decode` throws.
   */
  request<T>(
    api: KafkaApi,
    version: number,
    body: Buffer | readonly Buffer[],
    decode: (reader: ProtocolReader) => T,
    timeoutMs = this.#requestTimeoutMs,
  ): Promise<T> {
    if (this.#failure !== null) {
      return Promise.reject(
        new KafkaClientError(
          'closed',
          `${api.name} to Kafka broker ${this.address} not sent: ${this.#failure.message}`,
          { broker: this.address, cause: this.#failure },
        ),
      );
    }
    const chunks = Buffer.isBuffer(body) ? [body] : body;
    let size = 8 + this.#clientIdField.length;
    for (const chunk of chunks) size += chunk.length;
    const correlationId = this.#correlationId;
    this.#correlationId = (this.#correlationId + 1) & 0x7fffffff;
    const header = Buffer.allocUnsafe(12);
    header.writeInt32BE(size, 0);
    header.writeInt16BE(api.key, 4);
    header.writeInt16BE(version, 6);
    header.writeInt32BE(correlationId, 8);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => this.#timedOut(correlationId, timeoutMs), timeoutMs);
      this.#pending.push({
        correlationId,
        api,
        decode,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer,
      });
      const socket = this.#socket;
      socket.cork();
      socket.write(header);
      socket.write(this.#clientIdField);
      for (const chunk of chunks) socket.write(chunk);
      socket.uncork();
    });
  }

  /** Closes the connection; requests still waiting fail with a `closed` error. */
  close(): void {
    this.#fail(
      new KafkaClientError('closed', `connection to Kafka broker ${this.address} was closed`, {
        broker: this.address,
      }),
    );
  }

  async #handshake(sasl: KafkaSasl | undefined): Promise<void> {
    const api = KAFKA_APIS.apiVersions;
    const response = await this.request(api, api.max, encodeApiVersionsRequest(), (r) =>
      decodeApiVersionsResponse(r),
    );
    if (response.errorCode === KafkaErrorCode.UNSUPPORTED_VERSION) {
      throw new KafkaClientError(
        'unsupported',
        `Kafka broker ${this.address} does not speak ApiVersions v${api.max}: Kafka 2.1 or newer is needed`,
        { broker: this.address, errorCode: response.errorCode },
      );
    }
    if (response.errorCode !== 0) {
      throw this.#brokerError('ApiVersions', response.errorCode);
    }
    this.#versions = response.versions;
    if (sasl !== undefined) await this.#authenticate(sasl);
  }

  async #authenticate(sasl: KafkaSasl): Promise<void> {
    const mechanism = SASL_MECHANISM_NAMES[sasl.mechanism];
    const authFailure = (detail: string, errorCode: number | null = null): KafkaClientError =>
      new KafkaClientError(
        'auth',
        `SASL ${mechanism} authentication at Kafka broker ${this.address} failed: ${detail}`,
        { broker: this.address, errorCode },
      );
    const handshakeApi = KAFKA_APIS.saslHandshake;
    const handshake = await this.request(
      handshakeApi,
      this.versionOf(handshakeApi),
      encodeSaslHandshakeRequest(mechanism),
      (r) => decodeSaslHandshakeResponse(r),
    );
    if (handshake.errorCode === KafkaErrorCode.UNSUPPORTED_SASL_MECHANISM) {
      const offered = handshake.mechanisms.join(', ') || 'none';
      throw authFailure(`the listener does not enable ${mechanism} (it offers: ${offered})`, 33);
    }
    if (handshake.errorCode === KafkaErrorCode.ILLEGAL_SASL_STATE) {
      throw authFailure('the listener takes no SASL (is it a PLAINTEXT or SSL listener?)', 34);
    }
    if (handshake.errorCode !== 0) {
      throw authFailure(kafkaErrorName(handshake.errorCode), handshake.errorCode);
    }
    const authApi = KAFKA_APIS.saslAuthenticate;
    const authVersion = this.versionOf(authApi);
    const exchange = async (message: Buffer): Promise<Buffer> => {
      try {
        const response = await this.request(
          authApi,
          authVersion,
          encodeSaslAuthenticateRequest(message),
          (r) => decodeSaslAuthenticateResponse(authVersion, r),
        );
        if (response.errorCode !== 0) {
          throw authFailure(
            response.errorMessage ?? kafkaErrorName(response.errorCode),
            response.errorCode,
          );
        }
        if (response.sessionLifetimeMs > 0) {
          // Reconnect a little before the broker would drop the session.
          this.#sessionExpiresAt = Date.now() + response.sessionLifetimeMs * 0.9;
        }
        return response.authBytes;
      } finally {
        message.fill(0); // it may hold the password
      }
    };
    if (sasl.mechanism === 'plain') {
      await exchange(Buffer.from(`\u0000${sasl.username}\u0000${sasl.password}`, 'utf8'));
      return;
    }
    const scram = new ScramClient({
      mechanism: sasl.mechanism === 'scram-sha-256' ? 'SCRAM-SHA-256' : 'SCRAM-SHA-512',
      user: sasl.username,
      password: sasl.password,
    });
    const serverFirst = await exchange(Buffer.from(scram.clientFirst(), 'utf8'));
    let clientFinal: string;
    try {
      clientFinal = await scram.clientFinal(serverFirst.toString('utf8'));
    } catch (err) {
      throw authFailure(err instanceof Error ? err.message : String(err));
    }
    const serverFinal = await exchange(Buffer.from(clientFinal, 'utf8'));
    try {
      scram.verifyServerFinal(serverFinal.toString('utf8'));
    } catch (err) {
      throw authFailure(err instanceof Error ? err.message : String(err));
    }
  }

  #onFrame(frame: Buffer): void {
    const correlationId = frame.readInt32BE(0);
    const request = this.#pending[0];
    if (request === undefined || request.correlationId !== correlationId) {
      const expected = request === undefined ? 'none' : String(request.correlationId);
      this.#fail(
        new KafkaClientError(
          'malformed',
          `Kafka broker ${this.address} answered correlation id ${correlationId}, expected ${expected}`,
          { broker: this.address },
        ),
      );
      return;
    }
    this.#pending.shift();
    clearTimeout(request.timer);
    let value: unknown;
    try {
      value = request.decode(new ProtocolReader(frame, 4));
    } catch (err) {
      const error = this.#malformed(`its ${request.api.name} response`, err);
      request.reject(error);
      this.#fail(error);
      return;
    }
    request.resolve(value);
  }

  #timedOut(correlationId: number, timeoutMs: number): void {
    const request = this.#pending.find((p) => p.correlationId === correlationId);
    if (request === undefined) return;
    this.#pending.splice(this.#pending.indexOf(request), 1);
    const error = new KafkaClientError(
      'timeout',
      `${request.api.name} request to Kafka broker ${this.address} timed out after ${timeoutMs} ms`,
      { broker: this.address },
    );
    request.reject(error);
    // A late answer would be taken for the next request's: start over on a new connection.
    this.#fail(
      new KafkaClientError(
        'closed',
        `connection to Kafka broker ${this.address} closed after a request timed out`,
        { broker: this.address, cause: error },
      ),
    );
  }

  #fail(error: KafkaClientError): void {
    if (this.#failure !== null) return;
    this.#failure = error;
    this.#socket.destroy();
    for (const request of this.#pending.splice(0)) {
      clearTimeout(request.timer);
      request.reject(error);
    }
  }

  #malformed(what: string, err: unknown): KafkaClientError {
    const detail = err instanceof Error ? err.message : String(err);
    return new KafkaClientError(
      'malformed',
      `Kafka broker ${this.address} sent ${what} that cannot be decoded: ${detail}`,
      { broker: this.address, cause: err },
    );
  }

  #brokerError(what: string, errorCode: number): KafkaClientError {
    return new KafkaClientError(
      'broker',
      `Kafka broker ${this.address} answered ${what} with ${kafkaErrorName(errorCode)}`,
      { broker: this.address, errorCode },
    );
  }
}
