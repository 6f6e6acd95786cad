import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { PortcullisError } from '@portcullis/core';
import {
  BackendCode,
  ScramSha256Client,
  decodeAuthentication,
  decodeBackendKeyData,
  decodeErrorFields,
  decodeParameterStatus,
  md5PasswordResponse,
  passwordMessage,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
} from '@portcullis/protocol-pg';
import type { PostgresResource } from '../config/load-config.js';
import { upstreamTlsOptions } from './upstream-tls.js';
import { SocketReader } from './socket-reader.js';

/** An authenticated upstream session, ready for queries. */
export interface UpstreamConnection {
  readonly socket: Socket;
  readonly processId: number;
  readonly secretKey: number;
  /** The server's ParameterStatus frames, as received, to forward to the client. */
  readonly parameterFrames: readonly Buffer[];
  readonly parameters: ReadonlyMap<string, string>;
  /** Bytes that arrived after ReadyForQuery (normally none); they belong to the session. */
  readonly leftover: Buffer;
}

/** Largest handshake frame accepted from an upstream server. */
const MAX_HANDSHAKE_FRAME = 64 * 1024;

/**
 * Opens a connection to a resource's upstream server and logs in with the resource's own
 * credentials (trust, cleartext, md5 or SCRAM-SHA-256; TLS when configured). Resolves once the
 * server is ready for queries. Errors are PortcullisErrors whose messages are for the gateway
 * log: they may name the upstream, never the secret.
 */
export async function connectUpstream(
  resource: PostgresResource,
  startupParams: ReadonlyMap<string, string>,
): Promise<UpstreamConnection> {
  const plain = netConnect({ host: resource.host, port: resource.port, noDelay: true });
  let socket: Socket = plain;
  const reader = new SocketReader(plain, 'upstream');
  const deadline = setTimeout(() => {
    reader.fail(
      new PortcullisError(
        'PCL_ERR_UPSTREAM_CONNECT',
        `upstream ${resource.name} (${resource.host}:${resource.port}) did not complete login within ${resource.connectTimeoutMs} ms`,
      ),
    );
  }, resource.connectTimeoutMs);
  try {
    await reader.connected();
    if (resource.tls.mode !== 'disable') {
      plain.write(sslRequest);
      const answer = await reader.readBytes(1);
      if (answer[0] !== 0x53) {
        throw new PortcullisError(
          'PCL_ERR_UPSTREAM_CONNECT',
          `upstream ${resource.name} refused TLS (resources.${resource.name}.tls.mode is ${resource.tls.mode})`,
        );
      }
      reader.detach();
      const secure = tlsConnect({ ...upstreamTlsOptions(resource), socket: plain });
      socket = secure;
      reader.attach(secure);
      await reader.event('secureConnect');
    }
    socket.write(
      startupMessage(
        new Map([...startupParams, ['user', resource.user], ['database', resource.database]]),
      ),
    );
    return await login(socket, reader, resource);
  } catch (err) {
    socket.destroy();
    if (err instanceof PortcullisError) throw err;
    throw new PortcullisError(
      'PCL_ERR_UPSTREAM_CONNECT',
      `cannot connect to upstream ${resource.name} (${resource.host}:${resource.port}): ${(err as Error).message}`,
      { cause: err },
    );
  } finally {
    clearTimeout(deadline);
    reader.detach();
  }
}

async function login(
  socket: Socket,
  reader: SocketReader,
  resource: PostgresResource,
): Promise<UpstreamConnection> {
  const parameterFrames: Buffer[] = [];
  const parameters = new Map<string, string>();
  let key: { processId: number; secretKey: number } | null = null;
  let scram: ScramSha256Client | null = null;
  const password = (): string => {
    if (resource.password === null) {
      throw new PortcullisError(
        'PCL_ERR_UPSTREAM_AUTH',
        `upstream ${resource.name} asks for a password; set resources.${resource.name}.password`,
      );
    }
    return resource.password;
  };
  for (;;) {
    const { type, frame, body } = await reader.readFrame(MAX_HANDSHAKE_FRAME);
    switch (type) {
      case BackendCode.Authentication: {
        const auth = decodeAuthentication(body, 0, body.length);
        if (auth.kind === 'ok') break;
        if (auth.kind === 'cleartext') socket.write(passwordMessage(password()));
        else if (auth.kind === 'md5')
          socket.write(passwordMessage(md5PasswordResponse(resource.user, password(), auth.salt)));
        else if (auth.kind === 'sasl') {
          if (!auth.mechanisms.includes('SCRAM-SHA-256')) {
            throw new PortcullisError(
              'PCL_ERR_UPSTREAM_AUTH',
              `upstream ${resource.name} offers SASL mechanisms ${auth.mechanisms.join(', ')}; only SCRAM-SHA-256 is supported`,
            );
          }
          scram = new ScramSha256Client(password());
          socket.write(saslInitialResponse(scram.mechanism, scram.clientFirst()));
        } else if (auth.kind === 'sasl-continue' && scram !== null)
          socket.write(saslResponse(await scram.clientFinal(auth.data)));
        else if (auth.kind === 'sasl-final' && scram !== null) scram.verifyServerFinal(auth.data);
        else {
          throw new PortcullisError(
            'PCL_ERR_UPSTREAM_AUTH',
            `upstream ${resource.name} asks for authentication method ${auth.code}, which the gateway does not support`,
          );
        }
        break;
      }
      case BackendCode.ParameterStatus: {
        const { name, value } = decodeParameterStatus(body, 0, body.length);
        parameters.set(name, value);
        parameterFrames.push(frame);
        break;
      }
      case BackendCode.BackendKeyData:
        key = decodeBackendKeyData(body, 0, body.length);
        break;
      case BackendCode.ErrorResponse: {
        const error = decodeErrorFields(body, 0, body.length);
        const code = error.code.startsWith('28')
          ? 'PCL_ERR_UPSTREAM_AUTH'
          : 'PCL_ERR_UPSTREAM_CONNECT';
        throw new PortcullisError(
          code,
          `upstream ${resource.name} refused the login: ${error.code} ${error.message}`,
        );
      }
      case BackendCode.ReadyForQuery:
        return {
          socket,
          processId: key?.processId ?? 0,
          secretKey: key?.secretKey ?? 0,
          parameterFrames,
          parameters,
          leftover: reader.takeRest(),
        };
      case BackendCode.NoticeResponse:
      case BackendCode.NegotiateProtocolVersion:
        break;
      default:
        throw new PortcullisError(
          'PCL_ERR_PROTOCOL_MALFORMED',
          `upstream ${resource.name} sent message type ${JSON.stringify(String.fromCharCode(type))} during login`,
        );
    }
  }
}
