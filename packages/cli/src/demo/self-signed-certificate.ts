import { X509Certificate, createPrivateKey } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** A PEM certificate and key, and where they are stored. */
export interface DemoCertificate {
  cert: string;
  key: string;
  certPath: string;
  keyPath: string;
}

const VALIDITY_MS = 365 * 24 * 60 * 60 * 1000;
/** Renew a little before expiry, so a long-running demo does not cross it. */
const RENEW_BEFORE_MS = 24 * 60 * 60 * 1000;
/** Tolerates client clocks slightly behind ours. */
const BACKDATE_MS = 5 * 60 * 1000;

const inFlight = new Map<string, Promise<DemoCertificate>>();

/**
 * Returns a PEM cert/key for the demo listener, generated once and cached under `<dir>` (files tls/demo-cert.pem,
 * tls/demo-key.pem, key mode 0600). CN=localhost, SANs localhost, 127.0.0.1, ::1; ECDSA P-256 signed with SHA-256;
 * valid 1 year; regenerated when expired (or within a day of it), not yet valid, unreadable, or not a matching pair.
 */
export async function demoCertificate(dir: string): Promise<DemoCertificate> {
  const tlsDir = join(dir, 'tls');
  // Concurrent callers in this process share one generation rather than racing to write the files.
  let pending = inFlight.get(tlsDir);
  if (!pending) {
    pending = loadOrCreate(tlsDir).finally(() => inFlight.delete(tlsDir));
    inFlight.set(tlsDir, pending);
  }
  return pending;
}

async function loadOrCreate(tlsDir: string): Promise<DemoCertificate> {
  const certPath = join(tlsDir, 'demo-cert.pem');
  const keyPath = join(tlsDir, 'demo-key.pem');
  const existing = await readUsable(certPath, keyPath);
  if (existing) {
    await chmod(keyPath, 0o600);
    return { ...existing, certPath, keyPath };
  }
  const now = Date.now();
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: new Date(now - BACKDATE_MS),
    notAfterDate: new Date(now + VALIDITY_MS),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  await mkdir(tlsDir, { recursive: true, mode: 0o700 });
  // Key first: a reader never pairs a new certificate with an old key, and a torn pair fails the match check.
  await writeAtomically(keyPath, pems.private, 0o600);
  await writeAtomically(certPath, pems.cert, 0o644);
  return { cert: pems.cert, key: pems.private, certPath, keyPath };
}

async function readUsable(
  certPath: string,
  keyPath: string,
): Promise<{ cert: string; key: string } | null> {
  try {
    const [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
    const x509 = new X509Certificate(cert);
    const now = Date.now();
    if (Date.parse(x509.validFrom) > now || Date.parse(x509.validTo) - RENEW_BEFORE_MS <= now)
      return null;
    if (!x509.checkPrivateKey(createPrivateKey(key))) return null;
    return { cert, key };
  } catch {
    return null;
  }
}

async function writeAtomically(path: string, contents: string, mode: number): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, contents, { mode });
  // writeFile's mode is masked by the umask and ignored for existing files.
  await chmod(temporary, mode);
  await rename(temporary, path);
}
