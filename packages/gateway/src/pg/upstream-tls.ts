import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { PostgresResource } from '../config/load-config.js';

/** TLS options for a resource's upstream connections (login and cancel requests alike). */
export function upstreamTlsOptions(resource: PostgresResource): ConnectionOptions {
  const name = resource.tls.serverName ?? resource.host;
  return {
    // The certificate is checked against `host`; SNI takes host names only, not addresses.
    host: name,
    ...(isIP(name) === 0 ? { servername: name } : {}),
    rejectUnauthorized: resource.tls.mode === 'verify-full',
    ...(resource.tls.ca === null ? {} : { ca: resource.tls.ca }),
  };
}
