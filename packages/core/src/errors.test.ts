import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { errorCatalog, isPortcullisError, PortcullisError, type ErrorCode } from './errors.js';

const codes = Object.keys(errorCatalog) as ErrorCode[];
const docs = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The docs split into sections by `### CODE` headings. */
function docSections(): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = docs.split(/^### /m).slice(1);
  for (const part of parts) {
    const newline = part.indexOf('\n');
    const heading = part.slice(0, newline).trim();
    // A section runs to the next heading of any level.
    const body = part.slice(newline + 1).split(/^#{1,6} /m)[0]!;
    expect(sections.has(heading), `duplicate heading ${heading}`).toBe(false);
    sections.set(heading, body);
  }
  return sections;
}

/** Collapses line breaks so wrapped prose compares equal to the one-line summary. */
const flat = (text: string) => text.replace(/\s+/g, ' ');

describe('error catalog', () => {
  it('has codes of the form PCL_ERR_<AREA>_<WHAT>', () => {
    expect(codes.length).toBeGreaterThan(0);
    for (const code of codes) expect(code).toMatch(/^PCL_ERR_[A-Z]+_[A-Z_]+$/);
  });

  it('has unique codes and a summary for each', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) {
      expect(errorCatalog[code].summary.length).toBeGreaterThan(10);
      expect(errorCatalog[code].summary.endsWith('.')).toBe(true);
    }
  });
});

describe('docs/errors.md', () => {
  const sections = docSections();

  it.each(codes)('documents %s with its summary and retriable flag', (code) => {
    const body = sections.get(code);
    expect(body, `no "### ${code}" heading`).toBeDefined();
    const { retriable, summary } = errorCatalog[code];
    expect(flat(body!)).toContain(summary);
    expect(body).toMatch(new RegExp(`^Retriable: ${retriable ? 'yes' : 'no'}\\.`, 'm'));
    // Besides the summary, a line or two on what to do.
    expect(flat(body!).replace(summary, '').trim().length).toBeGreaterThan(40);
  });

  it('names no code that is not in the catalog', () => {
    const catalog = new Set<string>(codes);
    for (const heading of sections.keys()) expect(catalog.has(heading), heading).toBe(true);
    for (const [mention] of docs.matchAll(/PCL_ERR_[A-Z_]+/g)) {
      expect(catalog.has(mention), `docs mention unknown code ${mention}`).toBe(true);
    }
  });
});

describe('PortcullisError', () => {
  it('carries its code, the catalog retriable flag and the cause', () => {
    const cause = new Error('low level');
    const err = new PortcullisError('PCL_ERR_UPSTREAM_LOST', 'gone', { cause });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('PortcullisError');
    expect(err.code).toBe('PCL_ERR_UPSTREAM_LOST');
    expect(err.retriable).toBe(true);
    expect(err.cause).toBe(cause);
    expect(new PortcullisError('PCL_ERR_CONFIG_READ', 'x').retriable).toBe(false);
  });

  it('is recognised by isPortcullisError, with or without a code', () => {
    const err = new PortcullisError('PCL_ERR_AUTH_FAILED', 'no');
    expect(isPortcullisError(err)).toBe(true);
    expect(isPortcullisError(err, 'PCL_ERR_AUTH_FAILED')).toBe(true);
    expect(isPortcullisError(err, 'PCL_ERR_AUTH_FORBIDDEN')).toBe(false);
    expect(isPortcullisError(new Error('x'))).toBe(false);
    expect(isPortcullisError({ code: 'PCL_ERR_AUTH_FAILED' })).toBe(false);
  });
});
