import type { ApiVersionRange } from './kafka-apis.js';
import type { ProtocolReader } from './protocol-reader.js';

/** ApiVersions response (v0–v2; a broker that refuses the version answers in v0). */
export interface ApiVersionsResponse {
  readonly errorCode: number;
  readonly versions: ReadonlyMap<number, ApiVersionRange>;
}

/** The ApiVersions request body: empty in v0–v2. */
export function encodeApiVersionsRequest(): Buffer {
  return Buffer.alloc(0);
}

export function decodeApiVersionsResponse(reader: ProtocolReader): ApiVersionsResponse {
  const errorCode = reader.int16('error code');
  const versions = new Map<number, ApiVersionRange>();
  reader.array('api keys', 6, (r) => {
    const key = r.int16('api key');
    versions.set(key, { min: r.int16('min version'), max: r.int16('max version') });
  });
  // v1+ ends with the throttle time; an UNSUPPORTED_VERSION answer is v0 and has none.
  return { errorCode, versions };
}
