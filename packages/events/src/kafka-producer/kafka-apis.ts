import { KafkaClientError } from './kafka-client-error.js';

/** A Kafka API and the versions of it this client speaks. */
export interface KafkaApi {
  readonly name: string;
  readonly key: number;
  readonly min: number;
  readonly max: number;
}

/**
 * The APIs the producer uses, each at versions that are not "flexible" (no tagged fields, so one
 * plain encoding) and that every broker from Kafka 2.1 through 4.x accepts: Kafka 4.0 removed
 * Produce v0–v2, Metadata v0–v3 and SaslHandshake v0 (KIP-896); Produce v7 and InitProducerId v1
 * arrived in 2.1 and 2.0; Metadata v8 and SaslAuthenticate v1 in 2.3 and 2.2, so older brokers
 * get Metadata v5–v7 and SaslAuthenticate v0.
 */
export const KAFKA_APIS = {
  produce: { name: 'Produce', key: 0, min: 7, max: 7 },
  metadata: { name: 'Metadata', key: 3, min: 5, max: 8 },
  saslHandshake: { name: 'SaslHandshake', key: 17, min: 1, max: 1 },
  apiVersions: { name: 'ApiVersions', key: 18, min: 2, max: 2 },
  initProducerId: { name: 'InitProducerId', key: 22, min: 1, max: 1 },
  saslAuthenticate: { name: 'SaslAuthenticate', key: 36, min: 0, max: 1 },
} as const satisfies Record<string, KafkaApi>;

/** A broker's supported version range of one API. */
export interface ApiVersionRange {
  readonly min: number;
  readonly max: number;
}

/**
 * The highest version of `api` both sides speak. Throws an `unsupported` error naming the broker
 * and both ranges when there is none.
 */
export function chooseVersion(
  api: KafkaApi,
  brokerVersions: ReadonlyMap<number, ApiVersionRange>,
  broker: string,
): number {
  const range = brokerVersions.get(api.key);
  const max = Math.min(api.max, range?.max ?? -1);
  if (range === undefined || max < Math.max(api.min, range.min)) {
    const offered =
      range === undefined ? 'does not offer it' : `offers v${range.min}–v${range.max}`;
    throw new KafkaClientError(
      'unsupported',
      `Kafka broker ${broker} cannot be used: this client needs ${api.name} ` +
        `v${api.min}–v${api.max} (Kafka 2.1 or newer) and the broker ${offered}`,
      { broker },
    );
  }
  return max;
}
