// Realistic customer DataRows for masking benchmarks: id, name, email, phone, card, ssn, city,
// amount (about 130 bytes a row), deterministic for a given seed.
import type { ColumnType } from '@portcullis/masking';
import { prng } from './prng.js';

/** Column types of a customer row, as a RowDescription would give them (text format). */
export const CUSTOMER_COLUMNS: readonly ColumnType[] = [
  { typeOid: 20, format: 0 }, // id int8
  { typeOid: 25, format: 0 }, // name
  { typeOid: 25, format: 0 }, // email
  { typeOid: 25, format: 0 }, // phone
  { typeOid: 25, format: 0 }, // card
  { typeOid: 25, format: 0 }, // ssn
  { typeOid: 1043, format: 0 }, // city varchar
  { typeOid: 1700, format: 0 }, // amount numeric
];

const FIRST = ['Anna', 'Mohammed', 'Li', 'Sofía', 'James', 'Olga', 'Kwame', 'Ingrid', 'Raj', 'Zoë'];
const LAST = ['Smith', 'García', 'Nguyen', 'Müller', 'OBrien', 'Kowalski', 'Okafor', 'Tanaka'];
const CITIES = ['Berlin', 'São Paulo', 'New York', 'Lagos', 'Zürich', 'Kraków', 'Austin', 'Osaka'];
const DOMAINS = ['example.com', 'mail.example.org', 'example.co.uk', 'corp.example.io'];

/** Makes customer rows: call it for each next row's values. */
export function customerGenerator(seed: number): () => string[] {
  const random = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  const digits = (n: number): string => Array.from({ length: n }, () => int(0, 9)).join('');
  const luhn = (body: string): string => {
    for (let check = 0; check <= 9; check++) {
      const n = body + check;
      let sum = 0;
      for (let k = 0; k < n.length; k++) {
        let d = Number(n[n.length - 1 - k]);
        if (k % 2 === 1 && (d *= 2) > 9) d -= 9;
        sum += d;
      }
      if (sum % 10 === 0) return n;
    }
    throw new Error('unreachable');
  };
  let id = 0;
  return () => {
    const first = pick(FIRST);
    const last = pick(LAST);
    const prefix = pick(['4', '51', '55', '6011']);
    const card = luhn(prefix + digits(15 - prefix.length));
    const area = int(201, 989);
    return [
      String(++id),
      `${first} ${last}`,
      `${first}.${last}${int(1, 999)}@${pick(DOMAINS)}`.toLowerCase(),
      `+1 ${area}-555-${digits(4)}`,
      card.replace(/(\d{4})(?=\d)/g, '$1-'),
      `${String(int(1, 665)).padStart(3, '0')}-${String(int(1, 99)).padStart(2, '0')}-${digits(4)}`,
      pick(CITIES),
      `${int(1, 9999)}.${digits(2)}`,
    ];
  };
}

/** One DataRow frame (type byte, length, column count, values). */
export function dataRow(values: readonly string[]): Buffer {
  const bytes = values.map((v) => Buffer.from(v));
  const size = 2 + bytes.reduce((n, b) => n + 4 + b.length, 0);
  const out = Buffer.allocUnsafe(5 + size);
  out[0] = 0x44;
  out.writeInt32BE(4 + size, 1);
  let pos = out.writeInt16BE(values.length, 5);
  for (const b of bytes) {
    pos = out.writeInt32BE(b.length, pos);
    pos += b.copy(out, pos);
  }
  return out;
}

/**
 * Whole customer DataRows filling at most `bytes` (at least one row), in an ArrayBuffer of
 * their own, exactly their size.
 */
export function customerChunk(bytes: number, seed = 0x5eed): { chunk: Buffer; rows: number } {
  const next = customerGenerator(seed);
  const rows: Buffer[] = [];
  let size = 0;
  for (;;) {
    const row = dataRow(next());
    if (rows.length > 0 && size + row.length > bytes) break;
    rows.push(row);
    size += row.length;
  }
  const chunk = Buffer.from(new ArrayBuffer(size));
  Buffer.concat(rows).copy(chunk);
  return { chunk, rows: rows.length };
}
