import { describe, expect, it } from 'vitest';
import {
  AuthCode,
  BackendCode,
  FrontendCode,
  isBackendCode,
  isFrontendCode,
  StartupCode,
} from './message-codes.js';

describe('message codes', () => {
  it('has distinct type bytes within each direction', () => {
    for (const codes of [FrontendCode, BackendCode, AuthCode, StartupCode]) {
      const values = Object.values(codes);
      expect(new Set(values).size).toBe(values.length);
    }
  });

  it('classifies type bytes by direction', () => {
    for (const code of Object.values(FrontendCode)) expect(isFrontendCode(code)).toBe(true);
    for (const code of Object.values(BackendCode)) expect(isBackendCode(code)).toBe(true);
    expect(isFrontendCode(0x44)).toBe(true); // D: Describe
    expect(isBackendCode(0x44)).toBe(true); // D: DataRow
    expect(isFrontendCode(0x5a)).toBe(false); // Z is ReadyForQuery, backend only
    expect(isBackendCode(0x51)).toBe(false); // Q is Query, frontend only
    expect(isFrontendCode(0)).toBe(false);
    expect(isBackendCode(0xff)).toBe(false);
  });

  it('matches the protocol constants PostgreSQL uses', () => {
    expect(StartupCode).toEqual({
      Protocol3: 3 << 16,
      SSLRequest: (1234 << 16) | 5679,
      GSSENCRequest: (1234 << 16) | 5680,
      CancelRequest: (1234 << 16) | 5678,
    });
    expect(String.fromCharCode(BackendCode.DataRow, BackendCode.ReadyForQuery)).toBe('DZ');
    expect(String.fromCharCode(FrontendCode.Query, FrontendCode.Password)).toBe('Qp');
  });
});
