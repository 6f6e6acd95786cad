/** Why a Kafka request failed. */
export type KafkaClientFailure =
  /** No connection could be made (refused, connect timeout, TLS handshake failed). */
  | 'unreachable'
  /** A request got no answer in time (the connection is closed after it). */
  | 'timeout'
  /** The connection closed with the request unanswered. */
  | 'closed'
  /** SASL authentication failed, or the principal may not do what was asked. */
  | 'auth'
  /** The broker does not speak a protocol version this client needs. */
  | 'unsupported'
  /** A response could not be decoded (truncated, malformed, out of order). */
  | 'malformed'
  /** The broker answered with a Kafka error code. */
  | 'broker'
  /** The producer was closed. */
  | 'producer-closed';

/**
 * An error of the Kafka producer client. Messages name brokers, topics and Kafka error names;
 * never a credential.
 */
export class KafkaClientError extends Error {
  readonly failure: KafkaClientFailure;
  /** `host:port` of the broker concerned, when there is one. */
  readonly broker: string | null;
  /** The Kafka error code for `broker` failures (and auth failures the broker reported). */
  readonly errorCode: number | null;

  constructor(
    failure: KafkaClientFailure,
    message: string,
    options: { broker?: string | null; errorCode?: number | null; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KafkaClientError';
    this.failure = failure;
    this.broker = options.broker ?? null;
    this.errorCode = options.errorCode ?? null;
  }
}
