import type { PGliteInterface } from '@electric-sql/pglite';

/** Bump when the schema or data changes; a database seeded by an older version is left as it is. */
export const DEMO_SEED_VERSION = 1;

/** The default seed of {@link generateDemoDataset}, so every fresh demo shows the same people. */
export const DEMO_DEFAULT_SEED = 20_240_611;

/** Where the seed records itself; not on the default search_path, so `\dt` in psql does not show it. */
export const DEMO_SEED_MARKER_TABLE = 'portcullis_demo.seed';

/** A row of `public.customers`. */
export interface DemoCustomer {
  id: number;
  fullName: string;
  email: string;
  /** E.164, from ranges reserved for fiction where the country has one. */
  phone: string;
  /** Digits only, Luhn-valid, on well-known test BINs. */
  cardNumber: string;
  /** US SSN format in the never-issued 9xx area (group 01-49, so not an ITIN either). */
  nationalId: string;
  /** `YYYY-MM-DD`. */
  birthDate: string;
  city: string;
  /** ISO 3166-1 alpha-2. */
  country: string;
  /** ISO 8601 UTC. */
  createdAt: string;
}

/** A row of `public.products`. */
export interface DemoProduct {
  id: number;
  sku: string;
  name: string;
  priceCents: number;
  category: string;
}

/** The values `public.orders.status` allows. */
export type DemoOrderStatus = 'pending' | 'paid' | 'shipped' | 'refunded';

/** A row of `public.orders`. */
export interface DemoOrder {
  id: number;
  customerId: number;
  /** ISO 8601 UTC. */
  orderedAt: string;
  status: DemoOrderStatus;
  /** The sum of quantity × unit price over the order's items. */
  totalCents: number;
  shippingAddress: string;
}

/** A row of `public.order_items`. */
export interface DemoOrderItem {
  orderId: number;
  productId: number;
  quantity: number;
  unitPriceCents: number;
}

/** The demo's rows, table by table. */
export interface DemoDataset {
  seed: number;
  customers: DemoCustomer[];
  products: DemoProduct[];
  orders: DemoOrder[];
  orderItems: DemoOrderItem[];
}

/** Sizes and seed for {@link generateDemoDataset}. */
export interface DemoDatasetOptions {
  /** PRNG seed (default {@link DEMO_DEFAULT_SEED}). */
  seed?: number;
  /** Default 2000. */
  customers?: number;
  /** Default 50, at most 70. */
  products?: number;
  /** Default 5000; about 2.4 items each. */
  orders?: number;
}

/** A column holding personal or payment data, with the kind of data it holds. */
export interface DemoSensitiveColumn {
  table: string;
  column: string;
  kind: 'name' | 'email' | 'phone' | 'payment_card' | 'national_id' | 'birth_date' | 'address';
}

/** The demo's sensitive columns; each also carries a `COMMENT ON COLUMN` that starts with `sensitive:`. */
export const DEMO_SENSITIVE_COLUMNS: readonly DemoSensitiveColumn[] = [
  { table: 'customers', column: 'full_name', kind: 'name' },
  { table: 'customers', column: 'email', kind: 'email' },
  { table: 'customers', column: 'phone', kind: 'phone' },
  { table: 'customers', column: 'card_number', kind: 'payment_card' },
  { table: 'customers', column: 'national_id', kind: 'national_id' },
  { table: 'customers', column: 'birth_date', kind: 'birth_date' },
  { table: 'orders', column: 'shipping_address', kind: 'address' },
  { table: 'customer_order_totals', column: 'full_name', kind: 'name' },
  { table: 'customer_order_totals', column: 'email', kind: 'email' },
];

const SENSITIVE_COMMENTS: Record<DemoSensitiveColumn['kind'], string> = {
  name: "sensitive: name. The customer's full name (PII).",
  email: "sensitive: email. The customer's email address (PII).",
  phone: "sensitive: phone. The customer's phone number, E.164 (PII).",
  payment_card: 'sensitive: payment_card. Primary account number (PCI DSS cardholder data).',
  national_id: 'sensitive: national_id. US Social Security number (PII).',
  birth_date: "sensitive: birth_date. The customer's date of birth (PII).",
  address: 'sensitive: address. Postal address the order ships to (PII).',
};

/** The schema, without data. */
export const DEMO_SCHEMA_SQL = `
create table public.customers (
  id bigint primary key,
  full_name text not null,
  email text not null unique,
  phone text not null,
  card_number text not null,
  national_id text not null,
  birth_date date not null,
  city text not null,
  country text not null,
  created_at timestamptz not null
);
create table public.products (
  id bigint primary key,
  sku text not null unique,
  name text not null,
  price_cents int not null check (price_cents > 0),
  category text not null
);
create table public.orders (
  id bigint primary key,
  customer_id bigint not null references public.customers (id),
  ordered_at timestamptz not null,
  status text not null check (status in ('pending', 'paid', 'shipped', 'refunded')),
  total_cents int not null check (total_cents >= 0),
  shipping_address text not null
);
create index orders_customer_id_idx on public.orders (customer_id);
create table public.order_items (
  order_id bigint not null references public.orders (id) on delete cascade,
  product_id bigint not null references public.products (id),
  quantity int not null check (quantity > 0),
  unit_price_cents int not null check (unit_price_cents >= 0),
  primary key (order_id, product_id)
);
create index order_items_product_id_idx on public.order_items (product_id);
create view public.customer_order_totals as
  select c.id as customer_id, c.full_name, c.email,
         count(o.id)::int as order_count, coalesce(sum(o.total_cents), 0)::bigint as total_cents
  from public.customers c left join public.orders o on o.customer_id = c.id
  group by c.id, c.full_name, c.email;
`;

const FIRST_NAMES = (
  'Olivia Liam Emma Noah Amara Mateo Sofia Hiroshi Priya Wei Fatima Lukas Ingrid Kwame Aisha Diego ' +
  'Elena Omar Yuki Nia Seán Zoe Rafael Maya Ivan Leila Tomás Hannah Arjun Chloé Mohammed Grace ' +
  'Daniel Ana Samuel Mei Jonas Amelia Kofi Isabel Ethan Freya Ravi Lucía Oscar Nora Felix Aaliyah ' +
  'Hugo Sara'
).split(' ');
const LAST_NAMES = (
  "Smith Johnson Garcia Nguyen Okafor Müller Rossi Kowalski O'Brien Patel Kim Silva Haddad " +
  'Andersen Dubois Tanaka Mensah Novak Fernández Cohen Murphy Walker Chen Singh Yilmaz Lopez ' +
  'Schmidt Jensen Costa Ibrahim Martin Wright Ahmed Moreau Sato Hughes Bianchi Kaur Reyes Larsen ' +
  'Byrne Volkov Owusu Park Lindqvist Mendes Clarke Hashemi Fischer Santos'
).split(' ');
const STREETS = (
  'Maple Oak Cedar Elm Willow Harbor Station Mill Church Park River Hillcrest Lakeview Victoria ' +
  'King Queen Garden Orchard Meadow Bridge'
).split(' ');

interface CountryProfile {
  code: string;
  weight: number;
  cities: ReadonlyArray<{ name: string; areaCode?: string }>;
  phone: (random: Random, areaCode: string | undefined) => string;
  street: (random: Random) => string;
  postcode: (random: Random) => string;
}

const COUNTRIES: readonly CountryProfile[] = [
  {
    code: 'US',
    weight: 45,
    cities: [
      { name: 'New York', areaCode: '212' },
      { name: 'Chicago', areaCode: '312' },
      { name: 'Austin', areaCode: '512' },
      { name: 'Seattle', areaCode: '206' },
      { name: 'Denver', areaCode: '303' },
      { name: 'Boston', areaCode: '617' },
      { name: 'Portland', areaCode: '503' },
      { name: 'Atlanta', areaCode: '404' },
    ],
    // 555-0100..555-0199 is reserved for fiction in every North American area code.
    phone: (random, areaCode) => `+1${areaCode ?? '212'}55501${digits(random, 2)}`,
    street: (random) =>
      `${random.int(10, 9899)} ${random.pick(STREETS)} ${random.pick(['St', 'Ave', 'Rd', 'Blvd', 'Ln'])}`,
    postcode: (random) => digits(random, 5),
  },
  {
    code: 'CA',
    weight: 12,
    cities: [
      { name: 'Toronto', areaCode: '416' },
      { name: 'Vancouver', areaCode: '604' },
      { name: 'Montreal', areaCode: '514' },
    ],
    phone: (random, areaCode) => `+1${areaCode ?? '416'}55501${digits(random, 2)}`,
    street: (random) =>
      `${random.int(10, 4999)} ${random.pick(STREETS)} ${random.pick(['Street', 'Avenue', 'Road'])}`,
    postcode: (random) =>
      `${letter(random, 'KLMNPTV')}${random.int(1, 9)}${letter(random)} ${random.int(1, 9)}${letter(random)}${random.int(1, 9)}`,
  },
  {
    code: 'GB',
    weight: 17,
    cities: [
      { name: 'London' },
      { name: 'Manchester' },
      { name: 'Edinburgh' },
      { name: 'Bristol' },
    ],
    // Ofcom keeps 07700 900000..900999 for drama.
    phone: (random) => `+447700900${digits(random, 3)}`,
    street: (random) =>
      `${random.int(1, 240)} ${random.pick(STREETS)} ${random.pick(['Road', 'Street', 'Lane', 'Close'])}`,
    postcode: (random) =>
      `${letter(random, 'BEMNSW')}${random.int(1, 20)} ${random.int(1, 9)}${letter(random)}${letter(random)}`,
  },
  {
    code: 'FR',
    weight: 14,
    cities: [{ name: 'Paris' }, { name: 'Lyon' }, { name: 'Marseille' }, { name: 'Bordeaux' }],
    // ARCEP keeps 06 39 98 xx xx for fiction.
    phone: (random) => `+3363998${digits(random, 4)}`,
    street: (random) =>
      `${random.int(1, 180)} rue ${random.pick(['des Lilas', 'Victor Hugo', 'de la Paix', 'du Moulin', 'Pasteur'])}`,
    postcode: (random) => `${random.int(10, 95)}${digits(random, 3)}`,
  },
  {
    code: 'AU',
    weight: 12,
    cities: [{ name: 'Sydney' }, { name: 'Melbourne' }, { name: 'Brisbane' }],
    // ACMA keeps 0491 570 006..0491 570 159 for fiction.
    phone: (random) => `+61491570${String(random.int(6, 159)).padStart(3, '0')}`,
    street: (random) =>
      `${random.int(1, 400)} ${random.pick(STREETS)} ${random.pick(['Street', 'Parade', 'Road', 'Terrace'])}`,
    postcode: (random) => String(random.int(2000, 4999)),
  },
];

const EMAIL_DOMAINS = ['example.com', 'example.com', 'example.org', 'example.net'];

const CARD_BRANDS = [
  { prefix: '411111', length: 16, weight: 50 },
  { prefix: '555555', length: 16, weight: 35 },
  { prefix: '378282', length: 15, weight: 15 },
];

/** Category, SKU prefix, price range in dollars, and items separated by '|'. */
// prettier-ignore
const PRODUCT_ROWS = [
  ['Kitchen', 'KIT', 9, 149, 'Chef Knife|Cast Iron Skillet|Pour-Over Kettle|Cutting Board|Spice Grinder|Dutch Oven|Salad Spinner|Espresso Tamper|Mixing Bowl Set|Bread Knife'],
  ['Electronics', 'ELE', 19, 399, 'Wireless Earbuds|USB-C Hub|Mechanical Keyboard|Portable Charger|Smart Plug|Bluetooth Speaker|Webcam|E-Reader|Noise-Cancelling Headphones|Desk Lamp'],
  ['Outdoors', 'OUT', 15, 299, 'Trail Backpack|Camping Stove|Headlamp|Water Filter|Hammock|Trekking Poles|Sleeping Pad|Rain Shell|Insulated Bottle|Compass'],
  ['Books', 'BOO', 8, 45, 'Field Guide to Birds|Sourdough Handbook|Atlas of Remote Islands|Database Internals|Poetry Anthology|Mountain Stories|Garden Planner|History of Maps|Kids Science Lab|Cooking for One'],
  ['Home', 'HOM', 12, 249, 'Linen Duvet Cover|Wool Throw|Ceramic Planter|Wall Clock|Scented Candle|Bath Towel Set|Doormat|Storage Basket|Table Runner|Picture Frame'],
  ['Toys', 'TOY', 7, 89, 'Wooden Train Set|Puzzle 1000 Pieces|Building Blocks|Plush Fox|Kite|Board Game|Science Kit|Yo-Yo|Marble Run|Art Easel'],
  ['Apparel', 'APP', 12, 189, 'Merino Socks|Rain Jacket|Canvas Sneakers|Wool Beanie|Denim Shirt|Running Shorts|Leather Belt|Fleece Vest|Linen Scarf|Cotton Hoodie'],
] as const;
const PRODUCT_CATALOG = PRODUCT_ROWS.map(([category, code, minDollars, maxDollars, items]) => ({
  category,
  code,
  minDollars,
  maxDollars,
  items: items.split('|'),
}));

/** The data window: fixed dates rather than "now", so the dataset never changes. */
const CUSTOMERS_FROM = Date.UTC(2022, 0, 1);
const CUSTOMERS_UNTIL = Date.UTC(2025, 2, 31);
const ORDERS_UNTIL = Date.UTC(2025, 5, 30, 23, 59, 59);
const BIRTHS_FROM = Date.UTC(1942, 0, 1);
const BIRTHS_UNTIL = Date.UTC(2006, 11, 31);
const DAY_MS = 86_400_000;

interface Random {
  next(): number;
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(probability: number): boolean;
}

/** mulberry32: tiny, fast and good enough for fake data; the same seed always yields the same sequence. */
function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => items[Math.floor(next() * items.length)] as (typeof items)[number],
    chance: (probability) => next() < probability,
  };
}

function weighted<T extends { weight: number }>(random: Random, items: readonly T[]): T {
  const total = items.reduce((sum, item) => sum + item.weight, 0);
  let roll = random.next() * total;
  for (const item of items) {
    roll -= item.weight;
    if (roll < 0) return item;
  }
  return items[items.length - 1] as T;
}

function digits(random: Random, count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += String(random.int(0, 9));
  return out;
}

function letter(random: Random, alphabet = 'ABCDEFGHJKLMNPRSTUVWXYZ'): string {
  return alphabet.charAt(random.int(0, alphabet.length - 1));
}

/** Whether a digit string passes the Luhn checksum that payment card numbers carry. */
export function isLuhnValid(number: string): boolean {
  if (!/^\d{2,}$/.test(number)) return false;
  return luhnSum(number) % 10 === 0;
}

function luhnSum(number: string): number {
  let sum = 0;
  for (let i = 0; i < number.length; i++) {
    let digit = Number(number[number.length - 1 - i]);
    if (i % 2 === 1) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return sum;
}

function cardNumber(random: Random): string {
  const brand = weighted(random, CARD_BRANDS);
  const body = brand.prefix + digits(random, brand.length - brand.prefix.length - 1);
  const check = (10 - (luhnSum(`${body}0`) % 10)) % 10;
  return `${body}${check}`;
}

/** Lower-case ASCII letters only: "Seán O'Brien" becomes "sean" and "obrien". */
function emailPart(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function isoTimestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

/** Generates the demo's rows; pure and deterministic for a given seed and sizes. */
export function generateDemoDataset(options: DemoDatasetOptions = {}): DemoDataset {
  const seed = options.seed ?? DEMO_DEFAULT_SEED;
  const random = seededRandom(seed);
  const customers = generateCustomers(random, options.customers ?? 2000);
  const products = generateProducts(random, options.products ?? 50);
  const { orders, orderItems } = generateOrders(
    random,
    customers,
    products,
    options.orders ?? 5000,
  );
  return { seed, customers, products, orders, orderItems };
}

function generateCustomers(random: Random, count: number): DemoCustomer[] {
  const customers: DemoCustomer[] = [];
  const emails = new Set<string>();
  for (let id = 1; id <= count; id++) {
    const first = random.pick(FIRST_NAMES);
    const last = random.pick(LAST_NAMES);
    const f = emailPart(first);
    const l = emailPart(last);
    const local = random.pick([
      `${f}.${l}`,
      `${f}.${l}`,
      `${f}${l}`,
      `${f.charAt(0)}${l}`,
      `${f}_${l}`,
      `${l}.${f}`,
    ]);
    const domain = random.pick(EMAIL_DOMAINS);
    let email = `${local}@${domain}`;
    for (let n = 2; emails.has(email); n++) email = `${local}${n}@${domain}`;
    emails.add(email);
    const country = weighted(random, COUNTRIES);
    const city = random.pick(country.cities);
    const area = random.int(900, 999);
    customers.push({
      id,
      fullName: `${first} ${last}`,
      email,
      phone: country.phone(random, city.areaCode),
      cardNumber: cardNumber(random),
      nationalId: `${area}-${String(random.int(1, 49)).padStart(2, '0')}-${String(random.int(1, 9999)).padStart(4, '0')}`,
      birthDate: isoDate(
        BIRTHS_FROM + random.int(0, Math.floor((BIRTHS_UNTIL - BIRTHS_FROM) / DAY_MS)) * DAY_MS,
      ),
      city: city.name,
      country: country.code,
      createdAt: isoTimestamp(CUSTOMERS_FROM + random.next() * (CUSTOMERS_UNTIL - CUSTOMERS_FROM)),
    });
  }
  return customers;
}

function generateProducts(random: Random, count: number): DemoProduct[] {
  const all = PRODUCT_CATALOG.flatMap((group) => group.items.map((item) => ({ group, item })));
  if (count > all.length) throw new RangeError(`at most ${all.length} demo products`);
  // Take items round-robin across categories, so a small catalog still spans every category.
  const order = [...all.keys()].sort((a, b) => (a % 10) - (b % 10) || a - b);
  return order.slice(0, count).map((index, position) => {
    const { group, item } = all[index] as (typeof all)[number];
    const id = position + 1;
    return {
      id,
      sku: `${group.code}-${1000 + id}`,
      name: item,
      priceCents:
        random.int(group.minDollars, group.maxDollars) * 100 + random.pick([0, 49, 95, 99, 99]),
      category: group.category,
    };
  });
}

function generateOrders(
  random: Random,
  customers: DemoCustomer[],
  products: DemoProduct[],
  count: number,
): { orders: DemoOrder[]; orderItems: DemoOrderItem[] } {
  const drafts: Array<{
    customer: DemoCustomer;
    orderedAtMs: number;
    address: string;
    items: Array<Omit<DemoOrderItem, 'orderId'>>;
  }> = [];
  const homes = new Map<number, string>();
  // Skewed towards a core of repeat buyers, as real order books are, spread over ids by a shuffle.
  const byAppetite = [...customers];
  for (let i = byAppetite.length - 1; i > 0; i--) {
    const j = random.int(0, i);
    [byAppetite[i], byAppetite[j]] = [byAppetite[j] as DemoCustomer, byAppetite[i] as DemoCustomer];
  }
  for (let i = 0; i < count; i++) {
    const customer = byAppetite[
      Math.floor(byAppetite.length * random.next() ** 1.4)
    ] as DemoCustomer;
    const since = Date.parse(customer.createdAt);
    const orderedAtMs = since + random.next() * (ORDERS_UNTIL - since);
    let address = homes.get(customer.id);
    const country = COUNTRIES.find(
      (profile) => profile.code === customer.country,
    ) as CountryProfile;
    if (!address) {
      address = `${country.street(random)}, ${customer.city} ${country.postcode(random)}, ${customer.country}`;
      homes.set(customer.id, address);
    }
    if (random.chance(0.08)) {
      const city = random.pick(country.cities).name;
      address = `${country.street(random)}, ${city} ${country.postcode(random)}, ${customer.country}`;
    }
    const itemCount = weighted(random, [
      { n: 1, weight: 30 },
      { n: 2, weight: 30 },
      { n: 3, weight: 20 },
      { n: 4, weight: 12 },
      { n: 5, weight: 8 },
    ]).n;
    const chosen = new Set<number>();
    while (chosen.size < Math.min(itemCount, products.length))
      chosen.add(random.int(0, products.length - 1));
    const items = [...chosen].map((index) => {
      const product = products[index] as DemoProduct;
      const discounted = random.chance(0.1);
      return {
        productId: product.id,
        quantity: weighted(random, [
          { n: 1, weight: 70 },
          { n: 2, weight: 20 },
          { n: 3, weight: 7 },
          { n: 5, weight: 3 },
        ]).n,
        unitPriceCents: discounted
          ? Math.round((product.priceCents * random.int(80, 90)) / 100)
          : product.priceCents,
      };
    });
    drafts.push({ customer, orderedAtMs, address, items });
  }
  // Ids follow time, as a sequence-fed key would.
  drafts.sort((a, b) => a.orderedAtMs - b.orderedAtMs);
  const orders: DemoOrder[] = [];
  const orderItems: DemoOrderItem[] = [];
  drafts.forEach((draft, index) => {
    const id = index + 1;
    const recent = ORDERS_UNTIL - draft.orderedAtMs < 10 * DAY_MS;
    const status: DemoOrderStatus = recent
      ? random.pick(['pending', 'pending', 'paid', 'paid', 'shipped'] as const)
      : weighted(random, [
          { s: 'shipped' as const, weight: 78 },
          { s: 'refunded' as const, weight: 10 },
          { s: 'paid' as const, weight: 8 },
          { s: 'pending' as const, weight: 4 },
        ]).s;
    let totalCents = 0;
    for (const item of draft.items) {
      totalCents += item.quantity * item.unitPriceCents;
      orderItems.push({ orderId: id, ...item });
    }
    orders.push({
      id,
      customerId: draft.customer.id,
      orderedAt: isoTimestamp(draft.orderedAtMs),
      status,
      totalCents,
      shippingAddress: draft.address,
    });
  });
  return { orders, orderItems };
}

function literal(value: string | number): string {
  return typeof value === 'number' ? String(value) : `'${value.replaceAll("'", "''")}'`;
}

function insertStatements(
  table: string,
  columns: string[],
  rows: Array<Array<string | number>>,
  batch = 500,
): string[] {
  const statements: string[] = [];
  for (let start = 0; start < rows.length; start += batch) {
    const values = rows
      .slice(start, start + batch)
      .map((row) => `(${row.map(literal).join(',')})`)
      .join(',\n');
    statements.push(`insert into public.${table} (${columns.join(', ')}) values\n${values};`);
  }
  return statements;
}

/** SQL that creates the schema and loads the dataset (multi-row INSERTs), without transaction control. */
export function demoSeedSql(dataset: DemoDataset): string[] {
  const comments = DEMO_SENSITIVE_COLUMNS.map(
    ({ table, column, kind }) =>
      `comment on column public.${table}.${column} is ${literal(SENSITIVE_COMMENTS[kind])};`,
  );
  return [
    DEMO_SCHEMA_SQL,
    ...insertStatements(
      'customers',
      [
        'id',
        'full_name',
        'email',
        'phone',
        'card_number',
        'national_id',
        'birth_date',
        'city',
        'country',
        'created_at',
      ],
      dataset.customers.map((c) => [
        c.id,
        c.fullName,
        c.email,
        c.phone,
        c.cardNumber,
        c.nationalId,
        c.birthDate,
        c.city,
        c.country,
        c.createdAt,
      ]),
    ),
    ...insertStatements(
      'products',
      ['id', 'sku', 'name', 'price_cents', 'category'],
      dataset.products.map((p) => [p.id, p.sku, p.name, p.priceCents, p.category]),
    ),
    ...insertStatements(
      'orders',
      ['id', 'customer_id', 'ordered_at', 'status', 'total_cents', 'shipping_address'],
      dataset.orders.map((o) => [
        o.id,
        o.customerId,
        o.orderedAt,
        o.status,
        o.totalCents,
        o.shippingAddress,
      ]),
    ),
    ...insertStatements(
      'order_items',
      ['order_id', 'product_id', 'quantity', 'unit_price_cents'],
      dataset.orderItems.map((i) => [i.orderId, i.productId, i.quantity, i.unitPriceCents]),
      1000,
    ),
    `comment on table public.customers is 'Demo customers. Every person, card and number here is fictitious.';`,
    ...comments,
  ];
}

/** The slice of PGlite the seed needs. */
export type DemoSeedTarget = Pick<PGliteInterface, 'query' | 'exec' | 'transaction'>;

/** What {@link ensureDemoSeed} did. */
export interface DemoSeedResult {
  /** True when this call loaded the data; false when the database was seeded before. */
  seeded: boolean;
  /** The seed version recorded in the database. */
  version: number;
  /** Rows loaded per table (zero when nothing was loaded). */
  rows: { customers: number; products: number; orders: number; orderItems: number };
  elapsedMs: number;
}

/** Creates the schema and loads the dataset in one transaction, recording it in {@link DEMO_SEED_MARKER_TABLE}. */
export async function applyDemoSeed(
  db: DemoSeedTarget,
  dataset: DemoDataset = generateDemoDataset(),
): Promise<void> {
  await db.transaction(async (tx) => {
    for (const statement of demoSeedSql(dataset)) await tx.exec(statement);
    await tx.exec(`
      create schema portcullis_demo;
      create table ${DEMO_SEED_MARKER_TABLE} (version int not null, seed bigint not null, seeded_at timestamptz not null default now());
      insert into ${DEMO_SEED_MARKER_TABLE} (version, seed) values (${DEMO_SEED_VERSION}, ${dataset.seed});`);
  });
  // Fresh statistics, so the first EXPLAINs in the demo look like a real database's.
  await db.exec('analyze');
}

/** Seeds the database unless it already carries the seed marker; safe to call on every start. */
export async function ensureDemoSeed(
  db: DemoSeedTarget,
  options: { dataset?: DemoDatasetOptions; onProgress?: (message: string) => void } = {},
): Promise<DemoSeedResult> {
  const started = Date.now();
  const present = await db.query<{ present: boolean }>(
    `select to_regclass('${DEMO_SEED_MARKER_TABLE}') is not null as present`,
  );
  const marker = present.rows[0]?.present
    ? await db.query<{ version: number | null }>(
        `select max(version) as version from ${DEMO_SEED_MARKER_TABLE}`,
      )
    : null;
  const version = marker?.rows[0]?.version;
  if (version !== undefined && version !== null) {
    return {
      seeded: false,
      version,
      rows: { customers: 0, products: 0, orders: 0, orderItems: 0 },
      elapsedMs: Date.now() - started,
    };
  }
  const dataset = generateDemoDataset(options.dataset);
  options.onProgress?.(
    `Loading demo data: ${dataset.customers.length} customers, ${dataset.products.length} products, ` +
      `${dataset.orders.length} orders, ${dataset.orderItems.length} order items`,
  );
  await applyDemoSeed(db, dataset);
  return {
    seeded: true,
    version: DEMO_SEED_VERSION,
    rows: {
      customers: dataset.customers.length,
      products: dataset.products.length,
      orders: dataset.orders.length,
      orderItems: dataset.orderItems.length,
    },
    elapsedMs: Date.now() - started,
  };
}
