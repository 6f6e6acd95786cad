import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IdentityError, identityErrorCatalog, isIdentityError } from './identity-error.js';

describe('identity error list', () => {
  it('documents every code in the README with its retriable flag', () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    for (const [code, entry] of Object.entries(identityErrorCatalog)) {
      expect(code).toMatch(/^PCL_ERR_IDENTITY_[A-Z_]+$/);
      const cells = readme
        .split('\n')
        .map((line) => line.split('|').map((cell) => cell.trim()))
        .find((row) => row[1] === `\`${code}\``);
      expect(cells, code).toBeDefined();
      expect(cells?.[3]).toBe(entry.retriable ? 'yes' : 'no');
    }
  });

  it('carries code, reason and retriable', () => {
    const error = IdentityError.token('expired');
    expect(error).toMatchObject({
      code: 'PCL_ERR_IDENTITY_TOKEN_INVALID',
      reason: 'expired',
      retriable: false,
      message: 'token has expired',
    });
    expect(isIdentityError(error, 'PCL_ERR_IDENTITY_TOKEN_INVALID')).toBe(true);
    expect(isIdentityError(error, 'PCL_ERR_IDENTITY_IDP_UNREACHABLE')).toBe(false);
    expect(isIdentityError(new Error('x'))).toBe(false);
  });
});
