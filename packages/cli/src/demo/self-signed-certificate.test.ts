import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createSecureContext, createServer } from 'node:tls';
import { generate } from 'selfsigned';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { demoCertificate } from './self-signed-certificate.js';

describe('demoCertificate', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-cert-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a localhost certificate that TLS accepts, with a private key file', async () => {
    const pems = await demoCertificate(dir);
    expect(pems.certPath).toBe(join(dir, 'tls', 'demo-cert.pem'));
    expect(pems.keyPath).toBe(join(dir, 'tls', 'demo-key.pem'));
    expect(() => createSecureContext({ cert: pems.cert, key: pems.key })).not.toThrow();
    expect((await stat(pems.keyPath)).mode & 0o777).toBe(0o600);

    const x509 = new X509Certificate(pems.cert);
    expect(x509.subject).toContain('CN=localhost');
    expect(x509.subjectAltName).toContain('DNS:localhost');
    expect(x509.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(x509.subjectAltName).toMatch(/IP Address:(::1|0:0:0:0:0:0:0:1)/i);
    const lifetimeDays = (Date.parse(x509.validTo) - Date.parse(x509.validFrom)) / 86_400_000;
    expect(lifetimeDays).toBeGreaterThan(364);
    expect(lifetimeDays).toBeLessThan(367);
  });

  it('completes a verified handshake for localhost', async () => {
    const pems = await demoCertificate(dir);
    const server = createServer({ cert: pems.cert, key: pems.key }, (socket) => socket.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(
        { host: '127.0.0.1', port, servername: 'localhost', ca: pems.cert },
        () => {
          socket.once('data', (data) => resolve(data.toString()));
        },
      );
      socket.once('error', reject);
    });
    expect(reply).toBe('ok');
    server.close();
  });

  it('reuses the stored certificate, also for concurrent callers', async () => {
    const [a, b] = await Promise.all([demoCertificate(dir), demoCertificate(dir)]);
    expect(b.cert).toBe(a.cert);
    const again = await demoCertificate(dir);
    expect(again.cert).toBe(a.cert);
    expect(again.key).toBe(a.key);
  });

  it('regenerates an expired, unreadable or mismatched certificate', async () => {
    const original = await demoCertificate(dir);
    const expired = await generate([{ name: 'commonName', value: 'localhost' }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notBeforeDate: new Date(Date.now() - 400 * 86_400_000),
      notAfterDate: new Date(Date.now() - 86_400_000),
    });
    await writeFile(original.certPath, expired.cert);
    await writeFile(original.keyPath, expired.private);
    const renewed = await demoCertificate(dir);
    expect(renewed.cert).not.toBe(expired.cert);
    expect(Date.parse(new X509Certificate(renewed.cert).validTo)).toBeGreaterThan(Date.now());

    await writeFile(renewed.certPath, 'not a certificate');
    const repaired = await demoCertificate(dir);
    expect(() => createSecureContext({ cert: repaired.cert, key: repaired.key })).not.toThrow();

    await writeFile(repaired.keyPath, original.key);
    const rematched = await demoCertificate(dir);
    expect(rematched.cert).not.toBe(repaired.cert);
    expect(() => createSecureContext({ cert: rematched.cert, key: rematched.key })).not.toThrow();
  });
});
