import { randomBytes } from 'node:crypto';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDebianPackages } from './ensure-debian-packages.js';
import { runProgram } from './run-program.js';

/** Files and PEM text written by {@link generateTlsCertificates}. */
export interface TlsCertificates {
  /** PEM of the self-signed CA certificate; give it to clients as their trust anchor. */
  caCert: string;
  /** PEM of the server certificate, signed by the CA. */
  cert: string;
  /** PEM of the server's private key (unencrypted). */
  key: string;
  caCertFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * Generates, with the `openssl` program (installed if missing), a throw-away CA and a server
 * certificate it signs, valid for `127.0.0.1`, `::1` and `localhost` (subject alternative names).
 * Keys are ECDSA P-256, which is quick to generate. Writes `ca.crt`, `ca.key`, `server.crt` and
 * `server.key` into `dir`; the key files get mode 0600.
 */
export async function generateTlsCertificates(opts: {
  dir: string;
  commonName?: string;
}): Promise<TlsCertificates> {
  await ensureDebianPackages({ packages: ['openssl'], probe: ['/usr/bin/openssl'] });
  const { dir } = opts;
  const file = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const run = (args: string[]) => runProgram('openssl', args, { timeoutMs: 30_000 });
  await writeFile(
    file('server.ext'),
    [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature, keyEncipherment',
      'extendedKeyUsage = serverAuth',
      'subjectAltName = IP:127.0.0.1, IP:::1, DNS:localhost',
      'subjectKeyIdentifier = hash',
      'authorityKeyIdentifier = keyid',
      '',
    ].join('\n'),
  );
  await run([
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '3650',
    '-subj',
    '/CN=Portcullis test CA',
    '-addext',
    'basicConstraints = critical, CA:TRUE',
    '-addext',
    'keyUsage = critical, keyCertSign, cRLSign',
  ]);
  await run([
    'req',
    '-new',
    ...ec,
    '-keyout',
    file('server.key'),
    '-out',
    file('server.csr'),
    '-subj',
    `/CN=${opts.commonName ?? '127.0.0.1'}`,
  ]);
  await run([
    'x509',
    '-req',
    '-in',
    file('server.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '3650',
    '-extfile',
    file('server.ext'),
    '-out',
    file('server.crt'),
  ]);
  await Promise.all([
    chmod(file('ca.key'), 0o600),
    chmod(file('server.key'), 0o600),
    rm(file('server.csr'), { force: true }),
  ]);
  const [caCert, cert, key] = await Promise.all(
    ['ca.crt', 'server.crt', 'server.key'].map((name) => readFile(file(name), 'utf8')),
  );
  if (caCert === undefined || cert === undefined || key === undefined) {
    throw new Error(`openssl did not write the certificates into ${dir}`);
  }
  return {
    caCert,
    cert,
    key,
    caCertFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
  };
}
