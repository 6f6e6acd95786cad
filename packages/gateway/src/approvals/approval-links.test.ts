import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, chmodSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ApprovalLinkSigner,
  LINK_KEY_FILE,
  loadLinkKey,
  readReviewLink,
} from './approval-links.js';

const signer = new ApprovalLinkSigner(randomBytes(32));
const other = new ApprovalLinkSigner(randomBytes(32));
const now = Date.parse('2030-01-01T00:00:00Z');
const exp = now / 1000 + 300;
const link = { id: 'apr_abc', verdict: 'approve', exp } as const;

function parse(url: string) {
  const u = new URL(url);
  const parts = u.pathname.split('/');
  const id = decodeURIComponent(parts[parts.length - 2]!);
  return readReviewLink(id, u.searchParams);
}

describe('review links', () => {
  it('round-trips: the URL carries verdict, exp and a signature that verifies', () => {
    const url = signer.url('https://gw.example.com/pcl', link);
    expect(url).toMatch(
      /^https:\/\/gw\.example\.com\/pcl\/v1\/approvals\/apr_abc\/review\?verdict=approve&exp=\d+&sig=[\w-]{43}$/,
    );
    const read = parse(url)!;
    expect(read.link).toEqual(link);
    expect(signer.verify(read.link, read.sig, now)).toBeNull();
  });

  it('refuses a link signed by another key (forged)', () => {
    const read = parse(other.url('https://gw', link))!;
    expect(signer.verify(read.link, read.sig, now)).toBe('forged');
    expect(signer.verify(link, '', now)).toBe('forged');
    expect(signer.verify(link, 'x'.repeat(43), now)).toBe('forged');
  });

  it('refuses a tampered verdict, id or expiry', () => {
    const { sig } = parse(signer.url('https://gw', link))!;
    expect(signer.verify({ ...link, verdict: 'deny' }, sig, now)).toBe('forged');
    expect(signer.verify({ ...link, verdict: 'view' }, sig, now)).toBe('forged');
    expect(signer.verify({ ...link, id: 'apr_abd' }, sig, now)).toBe('forged');
    expect(signer.verify({ ...link, exp: exp + 3600 }, sig, now)).toBe('forged');
  });

  it('refuses an expired link, even correctly signed', () => {
    const { sig } = parse(signer.url('https://gw', link))!;
    expect(signer.verify(link, sig, exp * 1000)).toBe('expired');
    expect(signer.verify(link, sig, exp * 1000 - 1)).toBeNull();
  });

  it('reads only well-formed links', () => {
    const q = (s: string) => new URLSearchParams(s);
    expect(readReviewLink('a', q('verdict=approve&exp=10&sig=x'))).not.toBeNull();
    expect(readReviewLink('a', q('verdict=delete&exp=10&sig=x'))).toBeNull();
    expect(readReviewLink('a', q('verdict=approve&exp=1e9&sig=x'))).toBeNull();
    expect(readReviewLink('a', q('verdict=approve&exp=10'))).toBeNull();
  });
});

describe('sealed cookies', () => {
  it('open what was sealed, and nothing tampered or sealed with another key', () => {
    const sealed = signer.seal({ k: 'session', csrf: 'abc' });
    expect(signer.open(sealed)).toEqual({ k: 'session', csrf: 'abc' });
    expect(other.open(sealed)).toBeNull();
    const raw = Buffer.from(sealed, 'base64url');
    raw[14] = raw[14]! ^ 1;
    expect(signer.open(raw.toString('base64url'))).toBeNull();
    expect(signer.open('garbage')).toBeNull();
    expect(signer.seal({ a: 1 })).not.toBe(signer.seal({ a: 1 }));
  });
});

describe('loadLinkKey', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-link-key-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a private key once; concurrent loads agree', async () => {
    const data = join(dir, 'data');
    const keys = await Promise.all([loadLinkKey(data), loadLinkKey(data), loadLinkKey(data)]);
    expect(keys[0]!.length).toBe(32);
    expect(keys[1]).toEqual(keys[0]);
    expect(keys[2]).toEqual(keys[0]);
    expect(statSync(join(data, LINK_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(await loadLinkKey(data)).toEqual(keys[0]);
  });

  it('refuses a key others can read', async () => {
    const data = join(dir, 'loose');
    await loadLinkKey(data);
    chmodSync(join(data, LINK_KEY_FILE), 0o644);
    await expect(loadLinkKey(data)).rejects.toThrow(/readable by others/);
  });

  it('refuses a file that holds no key', async () => {
    const data = join(dir, 'empty');
    await loadLinkKey(data);
    writeFileSync(join(data, LINK_KEY_FILE), 'nope\n', { mode: 0o600 });
    await expect(loadLinkKey(data)).rejects.toThrow(/does not hold a key/);
  });
});
