import { decodeErrorFields, errorResponse } from '@portcullis/protocol-pg';
import { describe, expect, it } from 'vitest';
import { scrubDetailText, scrubRowDetails } from './scrub-row-details.js';

describe('scrubDetailText', () => {
  it.each([
    [
      'Failing row contains (1, null, ada@example.com, 4111 1111 1111 1111).',
      'Failing row contains (values hidden by Portcullis masking).',
    ],
    [
      'Key (email)=(ada@example.com) already exists.',
      'Key (email)=(values hidden by Portcullis masking) already exists.',
    ],
    [
      'Key (customer_id)=(42) is not present in table "customers".',
      'Key (customer_id)=(values hidden by Portcullis masking) is not present in table "customers".',
    ],
  ])('%s', (detail, expected) => {
    expect(scrubDetailText(detail)).toBe(expected);
  });

  it('leaves other details alone', () => {
    expect(scrubDetailText('Table "t" has no column "x".')).toBeNull();
  });
});

describe('scrubRowDetails', () => {
  it('rewrites the detail field of a frame and keeps the others', () => {
    const frame = errorResponse({
      severity: 'ERROR',
      code: '23505',
      message: 'duplicate key value violates unique constraint "customers_email_key"',
      detail: 'Key (email)=(ada@example.com) already exists.',
    });
    const out = scrubRowDetails(frame[0]!, frame, 5, frame.length)!;
    expect(out.readInt32BE(1)).toBe(out.length - 1);
    const fields = decodeErrorFields(out, 5, out.length);
    expect(fields.code).toBe('23505');
    expect(fields.message).toContain('customers_email_key');
    expect(fields.detail).toBe('Key (email)=(values hidden by Portcullis masking) already exists.');
  });

  it('returns null when there is nothing to scrub', () => {
    const frame = errorResponse({ severity: 'ERROR', code: '42601', message: 'syntax error' });
    expect(scrubRowDetails(frame[0]!, frame, 5, frame.length)).toBeNull();
  });
});
