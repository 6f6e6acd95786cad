// A labelled corpus for the content detectors: hand-written samples (realistic positives in
// context, positives in formats the detectors deliberately skip, and hard negatives that look
// like sensitive data) plus seeded generated ones. Each sample lists every span a reader would
// call sensitive, with its kind; the rest of the text must stay untouched.
import { createHmac } from 'node:crypto';
import type { DetectorKind } from './detector-kind.js';

/** One labelled text value. */
export interface CorpusSample {
  readonly text: string;
  /** Expected findings: kind and the exact text of the span. */
  readonly labels: readonly (readonly [DetectorKind, string])[];
}

const none = (...texts: string[]): CorpusSample[] => texts.map((text) => ({ text, labels: [] }));
const one = (kind: DetectorKind, ...texts: string[]): CorpusSample[] =>
  texts.map((text) => ({ text, labels: [[kind, text]] }));
/** `template` with `{}` standing for `value`. */
const inCtx = (kind: DetectorKind, template: string, value: string): CorpusSample => ({
  text: template.replace('{}', value),
  labels: [[kind, value]],
});

/** mulberry32: a small seeded PRNG, so the generated part is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const B62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// ---------------------------------------------------------------------------------------------
// Hand-written positives, in context and in the formats people type.

const handPositives: CorpusSample[] = [
  // email
  ...one(
    'email',
    'alice@example.com',
    'j.smith+newsletter@mail.example.co.uk',
    'o_connor-22@corp.example.org',
  ),
  inCtx('email', 'Contact: {}', 'Maria.Garcia@example.es'),
  inCtx('email', 'please reply to <{}>', 'support@help.example.com'),
  inCtx('email', 'mailto:{}', 'billing@example.io'),
  inCtx('email', 'Sent by {}.', 'noreply@example.com'),
  inCtx('email', '"{}"', 'user123@sub.domain.example'),
  inCtx('email', 'cc: {}; team', 'ops-team@example.net'),
  inCtx('email', 'Kontakt: {}', 'jürgen.müller@beispiel.de'),
  {
    text: 'From alice@example.com to bob@example.org',
    labels: [
      ['email', 'alice@example.com'],
      ['email', 'bob@example.org'],
    ],
  },
  // card
  ...one(
    'card',
    '4111111111111111',
    '4111 1111 1111 1111',
    '5555-5555-5555-4444',
    '378282246310005',
  ),
  ...one(
    'card',
    '3782 822463 10005',
    '6011 1111 1111 1117',
    '3566002020360505',
    '2223003122003222',
  ),
  inCtx('card', 'Card: {}', '4012 8888 8888 1881'),
  inCtx('card', 'paid with {} exp 12/27', '5105105105105100'),
  inCtx('card', 'cc={}&cvv=123', '4000056655665556'),
  inCtx('card', 'Amex {} on file', '3714-496353-98431'),
  inCtx('card', '(diners) {}', '36227206271667'),
  // iban
  ...one('iban', 'DE89370400440532013000', 'DE89 3704 0044 0532 0130 00', 'GB82WEST12345698765432'),
  ...one(
    'iban',
    'GB82 WEST 1234 5698 7654 32',
    'FR1420041010050500013M02606',
    'NL91ABNA0417164300',
  ),
  inCtx('iban', 'IBAN: {}', 'CH9300762011623852957'),
  inCtx('iban', 'pay to {} (Oslo)', 'NO9386011117947'),
  inCtx('iban', 'Konto {}, BIC COBADEFFXXX', 'DE75 5121 0800 1245 1261 99'),
  // ssn
  ...one('ssn', '123-45-6789', '078-05-1120', '219 09 9999'),
  inCtx('ssn', 'SSN: {}', '536-22-8726'),
  inCtx('ssn', 'ssn={};dob=1984-03-02', '401-72-1234'),
  inCtx('ssn', 'Social Security No. {}', '665-10-0001'),
  // phone
  ...one(
    'phone',
    '(415) 555-0132',
    '415-555-0132',
    '415.555.0132',
    '+1 415 555 0132',
    '1-800-555-0199',
  ),
  ...one(
    'phone',
    '+44 20 7946 0958',
    '020 7946 0958',
    '07700 900123',
    '+49 30 12345678',
    '030 12345678',
  ),
  ...one(
    'phone',
    '+33 1 23 45 67 89',
    '01 23 45 67 89',
    '(02) 9876 5432',
    '+14155550132',
    '+91 98765 43210',
  ),
  ...one('phone', '+1 (415) 555-0132', '+81 3-1234-5678', '03-1234-5678'),
  inCtx('phone', 'Tel: {}', '+353 1 234 5678'),
  inCtx('phone', 'call me at {} after 5pm', '212-555-0187'),
  inCtx('phone', 'tel:{}', '+12125550187'),
  inCtx('phone', 'Mobile {}, office ext. 12', '+44 7700 900456'),
  {
    text: 'Home 555-201-3344, work 555-201-9988',
    labels: [
      ['phone', '555-201-3344'],
      ['phone', '555-201-9988'],
    ],
  },
  // ipv4
  ...one('ipv4', '192.168.1.10', '10.0.0.1', '203.0.113.254', '8.8.8.8'),
  inCtx('ipv4', 'client {} connected', '198.51.100.23'),
  inCtx('ipv4', 'allow from {}/24', '172.16.0.0'),
  {
    text: 'X-Forwarded-For: 81.2.69.160, 10.1.2.3',
    labels: [
      ['ipv4', '81.2.69.160'],
      ['ipv4', '10.1.2.3'],
    ],
  },
  // ipv6
  ...one(
    'ipv6',
    '2001:db8::ff00:42:8329',
    '2001:0db8:85a3:0000:0000:8a2e:0370:7334',
    'fe80::1',
    '::1',
  ),
  inCtx('ipv6', 'peer [{}]:5432', '2001:db8:1::ab9:c0a8:102'),
  inCtx('ipv6', 'mapped {}', '::ffff:192.0.2.128'),
  // jwt
  inCtx(
    'jwt',
    'Authorization: Bearer {}',
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
  ),
  ...one(
    'jwt',
    'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.',
    'eyJraWQiOiJrMSIsImFsZyI6IlJTMjU2In0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0.c2lnbmF0dXJlLWJ5dGVzLWhlcmUtMTIzNDU',
  ),
  // aws-key
  ...one('aws-key', 'AKIAIOSFODNN7EXAMPLE', 'ASIAY34FZKBOKMUTVV7A'),
  inCtx('aws-key', 'aws_access_key_id = {}', 'AKIAJ7Q2WX5ZR3LMN4PA'),
  // private-key
  ...one(
    'private-key',
    '-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n-----END RSA PRIVATE KEY-----',
    '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n-----END PRIVATE KEY-----',
    '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n-----END OPENSSH PRIVATE KEY-----',
    '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n',
  ),
  inCtx(
    'private-key',
    'key: {}\nend',
    '-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIFHDBOBgkqhkiG9w0BBQ0wQTApBgkqhkiG9w0BBQwwHAQI\n-----END ENCRYPTED PRIVATE KEY-----',
  ),
  // api-token
  ...one(
    'api-token',
    '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',
    'sk_live_51H8aB2cD3eF4gH5iJ6kL7mN8',
    'glpat-x9Kd2LmQ7vR3tY8wZ1aB',
  ),
  ...one(
    'api-token',
    'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx',
    'AIzaSyD4-7bXq9Lm2Np8Rt5Vw3Yz6Ac1Ef0Gh2J',
  ),
  ...one(
    'api-token',
    'sk-proj-Tq8xV3mK9pL2wR7nB4cZ6yH1jF5dG0sA',
    'npm_4fGh7Jk2Lm9Np3Qr6St8Vw1Xy5Za0Bc2De4',
  ),
  inCtx('api-token', 'api_key={}', 'Zq7Kp2Lx9Rv4Tn8Wm3Yb6Hc1Jd5Fg0S'),
  inCtx('api-token', 'AWS_SECRET_ACCESS_KEY={}', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCY3XAMPLEKEY'),
  inCtx('api-token', 'token: {}', 'hf_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAB'),
  // several kinds in one free-text note
  {
    text: 'Customer called re ORD-2024-000123 on 2024-01-15; refund $49.99 to card 4111 1111 1111 1111. Contact jane.doe@example.com, +1 415-555-0132.',
    labels: [
      ['card', '4111 1111 1111 1111'],
      ['email', 'jane.doe@example.com'],
      ['phone', '+1 415-555-0132'],
    ],
  },
  {
    text: '{"email": "sam@example.org", "ip": "203.0.113.9", "ssn": "321-54-9876"}',
    labels: [
      ['email', 'sam@example.org'],
      ['ipv4', '203.0.113.9'],
      ['ssn', '321-54-9876'],
    ],
  },
];

/** Positives in formats the detectors skip on purpose (see their docs): counted as misses. */
const skippedFormats: CorpusSample[] = [
  ...one('phone', '4155550132', '555-0132', '07700900123'),
  inCtx('phone', 'Tel {} (home)', '0049 30 1234567'),
  ...one('ssn', '123456789'),
  ...one('iban', 'de89370400440532013000'),
  ...one('email', 'user@localhost'),
  inCtx('api-token', 'secret: {}', 'a3f9c2e7b1d84f6a9c0e5b2d7f1a8c3e'),
];

// ---------------------------------------------------------------------------------------------
// Hand-written hard negatives: things that look like the above and are not.

const handNegatives: CorpusSample[] = none(
  // names, places, prose
  'John Smith',
  'Berlin',
  'São Paulo',
  '1600 Amphitheatre Parkway, Mountain View, CA 94043',
  'Flat 4B, 221 Baker Street, London NW1 6XE',
  'The quick brown fox jumps over the lazy dog.',
  'Meeting moved to 3pm, room 4.12 (building C)',
  // timestamps and dates
  '2024-01-15T10:30:00Z',
  '2024-01-15 10:30:00.123456+00',
  '15/01/2024',
  '01/15/2024 3:45 PM',
  'Mon, 15 Jan 2024 10:30:00 GMT',
  '1705314600',
  '1705314600123',
  '20240115103000',
  '2024-01-15 - 2024-02-15',
  '15.01.2024 14:30',
  '01 02 2024',
  '12:30:45.123',
  'duration 01:02:03:04',
  // amounts and numbers
  '$1,299.99',
  '€ 1.299,00',
  'USD 12345.67',
  '1 299,00 zł',
  'Total: 1,234,567.89',
  '12 345 678',
  'qty 100 @ 4.25',
  '3.14159265358979',
  '-122.4194, 37.7749',
  '52.5200 13.4050',
  '0.000123',
  // order, invoice, tracking and product numbers
  'ORD-2024-000123',
  'INV-88213',
  'PO #4500012345',
  'Order 112-7654321-1234567',
  '1Z999AA10123456784',
  '9400 1118 9922 3100 0123 45',
  'SKU-XJ9-BLK-42-L',
  'EAN 4006381333931',
  '5901234123457',
  'IMEI 356938035643809',
  'case #20240115-0042',
  'ticket JIRA-12345',
  'batch 2024-01-15-001',
  'Room 101-202',
  'ext. 4521',
  'serial 000-00-0000',
  'part 666-12-3456',
  'ref 900-12-3456',
  '123-45-67890',
  '12345-6789',
  'zip 94043-1351',
  '1234 5678',
  // versions, identifiers, codes
  '1.2.3',
  'v2.14.0',
  '4.2.0-beta.1',
  'Node.js v20.11.1',
  'Python 3.12.1',
  'build 10.0.19045.3803',
  'v1.2.3.4',
  'OID 1.3.6.1.4.1.311.21.8',
  '192.168.1',
  '999.1.1.1',
  '01.02.03.04',
  'ISBN 978-3-16-148410-0',
  'ISBN 0-306-40615-2',
  'ISBN-13: 9780306406157',
  'doi:10.1000/182',
  'lodash@4.17.21',
  'npm i @babel/core@7.23.0',
  '@johndoe',
  'icon@2x.png',
  'logo@3x.webp',
  'user at example dot com',
  'name@',
  // clock times, MACs and code with colons
  '10:30:45',
  '00:1A:2B:3C:4D:5E',
  'std::vector<int>',
  'Foo::Bar::baz()',
  '12:00 - 14:00',
  'ratio 16:9',
  'a:b:c',
  'dead::beef',
  // hashes, UUIDs, base64
  '550e8400-e29b-41d4-a716-446655440000',
  'commit 9fceb02d0ae598e95dc970b74767f19372d61af8',
  'a1b2c3d',
  'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  'md5 d41d8cd98f00b204e9800998ecf8427e',
  'ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
  'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==',
  'SGVsbG8gV29ybGQ=',
  // identifiers, paths, slugs, URLs
  'getUserAccountSettingsById2',
  'HandleRequestTimeoutError404',
  'AbstractSingletonProxyFactoryBean2',
  'customer_account_balance_2024',
  'SELECT_USER_BY_ID_2024_Q3',
  'src/components/UserProfile2/index.tsx',
  '/Users/JohnSmith/Documents/Report2024Final.docx',
  'x86_64-unknown-linux-gnu/Release2',
  'https://example.com/en-US/docs/Web/API/Fetch_API/Using_Fetch2',
  'https://example.com/blog/2024/01/how-we-scaled-postgres-to-10x',
  'sk-learn-tutorial-part-2-of-10',
  'ThisIsATestString1234567',
  'MyDocuments/Reports/Q3Report2024Final',
  'pk_live_51H8aB2cD3eF4gH5iJ6kL7mN8',
  // almost-secrets
  'eyJ',
  'header.payload.signature',
  'eyJmb28iOiJiYXIifQ.eyJ4IjoxfQ.c2lnbmF0dXJl',
  'AKIA',
  'AKIAIOSFODNN7EXAMPL',
  'XAKIAIOSFODNN7EXAMPLE',
  '-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ\n-----END CERTIFICATE-----',
  '-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----',
  '---------- separator ----------',
  'DE00 0000 0000 0000 0000 00',
  'GB00WEST12345698765432',
  'NL91 ABNA 0417 1643 01',
);

/**
 * A second batch, written after the detectors were tuned on the samples above and not tuned
 * against: its misses and false positives stay in the figures.
 */
const untuned: CorpusSample[] = [
  inCtx('email', 'E-mail: {}', 'Peter.Müller@firma.de'),
  inCtx('email', '{} (work)', 'first.last@dept.university.ac.uk'),
  inCtx('phone', 'Reach me: {}', '+1-202-555-0173'),
  inCtx('phone', '(+44) 20 7946 0958', '(+44) 20 7946 0958'),
  inCtx('phone', 'Tel. {}', '0171 1234567'),
  inCtx('phone', 'Fax {}', '+49 (0)30 1234567'),
  inCtx('phone', 'WhatsApp: {}', '+55 11 91234-5678'),
  inCtx('ssn', 'ssn {}', '123 45 6789'),
  inCtx('card', 'Card ending {}', '4242 4242 4242 4242'),
  inCtx('iban', 'IBAN {}', 'GB33BUKB20201555555555'),
  inCtx('iban', 'IBAN: {}.', 'ES91 2100 0418 4502 0005 1332'),
  inCtx('ipv6', 'ip={}', '2a02:26f0:fe::5c:f55'),
  inCtx('ipv4', 'remote_addr="{}"', '100.64.12.7'),
  inCtx('aws-key', 'key {}', 'AKIA2E0A8F3B244C9986'),
  inCtx('api-token', 'slack {}', 'xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy'),
  inCtx('api-token', 'OPENAI_API_KEY={}', 'sk-3kT9qLmZx7Vw2Yb5Nc8Rd1Fg4Hj6Ks0Ap'),
  inCtx('api-token', 'password: {}', 'N7v#Qz'),
  ...none(
    'Patient DOB 1985-07-23, MRN 00123456',
    'Flight LH 454 departs 14:35 from gate B22',
    'Invoice total 4,250.00 due 2024-03-31',
    'Tracking: 1Z 999 AA1 01 2345 6784',
    'GPS 40.7128° N, 74.0060° W',
    'Temperature 23.5°C at 12:00',
    'Serial No. SN-2023-0045-XK',
    'Lot 23-0456-789',
    'hours 9:00-17:00 Mon-Fri',
    'Rev. 3.2.1.0 build 4567',
    'RGB(255, 128, 0)',
    'Account 12345678 sort code 12-34-56',
    'Score 3-1 (HT 1-0)',
    'Ref: 2024/00123/AB',
    'ISO 8601: P1Y2M10DT2H30M',
    'SELECT * FROM users WHERE id = 42',
    'git rev 4b825dc642cb6eb9a060e54bf8d69288fbee4904',
    'image sha256:6c3c624b58dbbcd3c0dd82b4c53f04194d1247c6eebdaab7c610cf7d66709b3b',
    'pod web-7d4b9c8f6d-x2v9k',
    'arn:aws:iam::123456789012:role/Admin',
    'region us-east-1',
    'Stripe charge ch_3MmlLrLkdIwHu7ix0snN0B15',
    'customer cus_NffrFeUfNV2Hib',
    'event evt_1NG8Du2eZvKYlo2CUI79vXWy',
    'nanoid V1StGXR8_Z5jdHi6B-myT',
    'ObjectId 507f1f77bcf86cd799439011',
    'ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV',
    'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36',
    'Chrome/120.0.6099.109',
    'Lorem ipsum dolor sit amet, consectetur adipiscing elit 2024',
    'Hello, World! 👋 Ünïcödé — test',
    'C:\\Program Files\\App\\v2.3.1\\bin',
    'phone: unknown',
    '5 Main St Apt 2, Springfield IL 62704',
    'Order total $1,234.56 (incl. VAT 19%)',
    'Weight 72.5 kg, height 180 cm, BMI 22.4',
    'uploads/2024/01/IMG_20240115_103000.jpg',
    'PostgreSQL 16.2 on x86_64-pc-linux-gnu, compiled by gcc (GCC) 13.2.1, 64-bit',
    'LSN 0/16B3748',
    'txid 7654321098',
    'pg_stat_statements.max = 10000',
  ),
];

// ---------------------------------------------------------------------------------------------
// Generated samples.

function luhnComplete(body: string): string {
  for (let check = 0; check <= 9; check++) {
    const n = body + check;
    let sum = 0;
    for (let k = 0; k < n.length; k++) {
      let d = Number(n[n.length - 1 - k]);
      if (k % 2 === 1) {
        d *= 2;
        if (d > 9) d -= 9;
      }
      sum += d;
    }
    if (sum % 10 === 0) return n;
  }
  throw new Error('unreachable');
}

function ibanFor(country: string, bban: string): string {
  const digits = (bban + country + '00').replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55));
  let rem = 0;
  for (const d of digits) rem = (rem * 10 + Number(d)) % 97;
  return country + String(98 - rem).padStart(2, '0') + bban;
}

function generated(seed: number): { positives: CorpusSample[]; negatives: CorpusSample[] } {
  const random = prng(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
  const pick = <T>(items: readonly T[]): T => items[int(0, items.length - 1)]!;
  const digits = (n: number): string => Array.from({ length: n }, () => int(0, 9)).join('');
  const chars = (n: number, alphabet: string): string =>
    Array.from({ length: n }, () => alphabet[int(0, alphabet.length - 1)]).join('');
  const positives: CorpusSample[] = [];
  const negatives: CorpusSample[] = [];
  const contexts = ['{}', 'value: {}', 'see {} above', '({})', '{}; ok'];

  // Cards of the common schemes, plain, spaced or dashed.
  const schemes: [string, number][] = [
    ['4', 16],
    ['51', 16],
    ['55', 16],
    ['2221', 16],
    ['2720', 16],
    ['34', 15],
    ['37', 15],
    ['6011', 16],
    ['65', 16],
    ['3530', 16],
    ['62', 16],
    ['36', 14],
  ];
  for (let i = 0; i < 60; i++) {
    const [prefix, length] = pick(schemes);
    const pan = luhnComplete(prefix + digits(length - prefix.length - 1));
    const style = int(0, 2);
    const grouped = style === 0 ? pan : (pan.match(/.{1,4}/g) ?? []).join(style === 1 ? ' ' : '-');
    positives.push(inCtx('card', pick(contexts), grouped));
  }
  // IBANs of several countries, compact or in groups of four.
  const countries: [string, () => string][] = [
    ['DE', () => digits(18)],
    ['GB', () => chars(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') + digits(14)],
    ['FR', () => digits(23)],
    ['NL', () => chars(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') + digits(10)],
    ['ES', () => digits(20)],
    ['IT', () => 'X' + digits(22)],
    ['CH', () => digits(17)],
    ['BE', () => digits(12)],
    ['PL', () => digits(24)],
    ['AT', () => digits(16)],
  ];
  for (let i = 0; i < 40; i++) {
    const [country, bban] = pick(countries);
    const iban = ibanFor(country, bban());
    positives.push(
      inCtx(
        'iban',
        pick(contexts),
        int(0, 1) === 0 ? iban : (iban.match(/.{1,4}/g) ?? []).join(' '),
      ),
    );
  }
  // SSNs in the issued ranges.
  for (let i = 0; i < 40; i++) {
    let area = int(1, 899);
    if (area === 666) area = 667;
    const ssn = `${String(area).padStart(3, '0')}-${String(int(1, 99)).padStart(2, '0')}-${String(int(1, 9999)).padStart(4, '0')}`;
    positives.push(inCtx('ssn', pick(contexts), int(0, 4) === 0 ? ssn.replace(/-/g, ' ') : ssn));
  }
  // Phones in international and national forms.
  const phoneForms = [
    () => `(${int(201, 989)}) ${digits(3)}-${digits(4)}`,
    () => `${int(201, 989)}-${digits(3)}-${digits(4)}`,
    () => `${int(201, 989)}.${digits(3)}.${digits(4)}`,
    () => `+1 ${int(201, 989)} ${digits(3)} ${digits(4)}`,
    () => `+1${int(201, 989)}${digits(7)}`,
    () => `+44 20 ${digits(4)} ${digits(4)}`,
    () => `07${digits(3)} ${digits(6)}`,
    () => `+49 ${int(30, 89)} ${digits(8)}`,
    () => `+33 ${int(1, 9)} ${digits(2)} ${digits(2)} ${digits(2)} ${digits(2)}`,
    () => `0${int(1, 9)} ${digits(2)} ${digits(2)} ${digits(2)} ${digits(2)}`,
    () => `+61 ${int(2, 8)} ${digits(4)} ${digits(4)}`,
  ];
  for (let i = 0; i < 60; i++) positives.push(inCtx('phone', pick(contexts), pick(phoneForms)()));
  // Emails.
  const first = ['anna', 'li.wei', 'j', 'mohammed', 'o.brien', 'kim-lee', 'x_y', 'sofia99'];
  const domains = [
    'example.com',
    'mail.example.org',
    'corp.example.co.uk',
    'example.io',
    'uni.example.edu',
  ];
  for (let i = 0; i < 40; i++) {
    const email = `${pick(first)}${int(0, 1) === 0 ? '' : int(1, 999)}@${pick(domains)}`;
    positives.push(inCtx('email', pick(contexts), email));
  }
  // IP addresses.
  for (let i = 0; i < 30; i++) {
    positives.push(
      inCtx('ipv4', pick(contexts), [int(1, 223), int(0, 255), int(0, 255), int(1, 254)].join('.')),
    );
  }
  for (let i = 0; i < 30; i++) {
    const groups = Array.from({ length: 8 }, () => int(0, 0xffff).toString(16));
    if (!groups.some((g) => /\d/.test(g))) groups[7] = '1';
    const full = groups.join(':');
    const compressed = `${groups[0]}:${groups[1]}::${groups[6]}:${groups[7]}`;
    const text = int(0, 1) === 0 ? full : compressed;
    if (/\d/.test(text)) positives.push(inCtx('ipv6', pick(contexts), text));
  }
  // JWTs.
  const b64url = (s: string): string => Buffer.from(s).toString('base64url');
  for (let i = 0; i < 25; i++) {
    const header = b64url(JSON.stringify({ alg: pick(['HS256', 'RS256', 'ES256']), typ: 'JWT' }));
    const payload = b64url(JSON.stringify({ sub: String(int(1, 1e6)), iat: int(1.6e9, 1.8e9) }));
    const signature = createHmac('sha256', String(i)).update(header).digest('base64url');
    positives.push(
      inCtx('jwt', pick(['{}', 'Bearer {}', 'token={}']), `${header}.${payload}.${signature}`),
    );
  }
  // AWS key ids and vendor tokens.
  for (let i = 0; i < 20; i++) {
    positives.push(
      inCtx(
        'aws-key',
        pick(contexts),
        pick(['AKIA', 'ASIA']) + chars(16, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'),
      ),
    );
  }
  const tokenForms = [
    () => 'ghp_' + chars(36, B62),
    () => 'sk_live_' + chars(24, B62),
    () => 'xoxp-' + digits(12) + '-' + digits(13) + '-' + chars(24, B62),
    () => 'glpat-' + chars(20, B62 + '_-'),
    () => chars(int(32, 48), B62),
    () => chars(40, B62 + '+/'),
  ];
  for (let i = 0; i < 40; i++) {
    const token = pick(tokenForms)();
    positives.push(
      inCtx('api-token', pick(['{}', 'api_key={}', 'secret: {}', 'Bearer {}']), token),
    );
  }

  // Hard negatives: UUIDs, hashes, epoch and ISO times, numeric ids, amounts, versions,
  // base64 images, ISBN-13 and EAN-13 codes (valid check digits), MAC addresses.
  const hex = '0123456789abcdef';
  for (let i = 0; i < 20; i++) {
    negatives.push(
      ...none(
        `${chars(8, hex)}-${chars(4, hex)}-4${chars(3, hex)}-${pick(['8', '9', 'a', 'b'])}${chars(3, hex)}-${chars(12, hex)}`,
        chars(pick([7, 40, 64]), hex),
        String(int(1.5e9, 1.8e9)) + (int(0, 1) === 0 ? '' : digits(3)),
        new Date(int(1.5e12, 1.8e12)).toISOString(),
        `ORD-${digits(int(6, 12))}`,
        digits(int(5, 11)),
        `${int(1, 9999)}.${digits(2)} EUR`,
        `${int(0, 20)}.${int(0, 40)}.${int(0, 200)}`,
        `data:image/jpeg;base64,/9j/${chars(300, B62 + '+/')}`,
        Array.from({ length: 6 }, () => chars(2, '0123456789ABCDEF')).join(':'),
      ),
    );
  }
  for (let i = 0; i < 20; i++) {
    // ISBN-13 / EAN-13 with their own (1-3 weighted) check digit.
    const body = pick(['978', '979', '400', '590', '690', '50']) + digits(9);
    const b12 = body.slice(0, 12);
    let sum = 0;
    for (let k = 0; k < 12; k++) sum += Number(b12[k]) * (k % 2 === 0 ? 1 : 3);
    negatives.push(...none(b12 + String((10 - (sum % 10)) % 10)));
  }
  return { positives, negatives };
}

const gen = generated(0x5eed);

/** The whole corpus. */
export const DETECTOR_CORPUS: readonly CorpusSample[] = [
  ...handPositives,
  ...skippedFormats,
  ...handNegatives,
  ...untuned,
  ...gen.positives,
  ...gen.negatives,
];
