import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEMO_SENSITIVE_COLUMNS,
  demoSeedSql,
  ensureDemoSeed,
  generateDemoDataset,
  isLuhnValid,
  type DemoSeedResult,
} from './demo-seed.js';

describe('generateDemoDataset', () => {
  const dataset = generateDemoDataset();

  it('is deterministic for a seed and differs across seeds', () => {
    expect(generateDemoDataset()).toEqual(dataset);
    expect(demoSeedSql(generateDemoDataset())).toEqual(demoSeedSql(dataset));
    expect(generateDemoDataset({ seed: 7 }).customers[0]).not.toEqual(dataset.customers[0]);
  });

  it('has the documented sizes', () => {
    expect(dataset.customers).toHaveLength(2000);
    expect(dataset.products).toHaveLength(50);
    expect(dataset.orders).toHaveLength(5000);
    expect(dataset.orderItems.length).toBeGreaterThan(11_000);
    expect(dataset.orderItems.length).toBeLessThan(13_000);
  });

  it('makes plausible, safe personal data', () => {
    const emails = new Set(dataset.customers.map((c) => c.email));
    expect(emails.size).toBe(dataset.customers.length);
    for (const c of dataset.customers) {
      expect(c.email).toMatch(/^[a-z0-9._]+@example\.(com|org|net)$/);
      expect(c.phone).toMatch(/^\+[1-9]\d{9,14}$/);
      expect(c.cardNumber).toMatch(/^(411111\d{10}|555555\d{10}|378282\d{9})$/);
      expect(isLuhnValid(c.cardNumber)).toBe(true);
      expect(c.nationalId).toMatch(/^9\d\d-(0[1-9]|[1-4]\d)-\d{4}$/);
      expect(c.nationalId.endsWith('-0000')).toBe(false);
      expect(c.birthDate).toMatch(/^(19[4-9]\d|200[0-6])-\d\d-\d\d$/);
      expect(c.fullName).toMatch(/^\S+ \S+$/);
    }
    expect(dataset.customers.some((c) => c.fullName.includes("'"))).toBe(true);
  });

  it('keeps order totals equal to their items and ids in time order', () => {
    const totals = new Map<number, number>();
    for (const item of dataset.orderItems)
      totals.set(
        item.orderId,
        (totals.get(item.orderId) ?? 0) + item.quantity * item.unitPriceCents,
      );
    for (const order of dataset.orders) expect(order.totalCents).toBe(totals.get(order.id));
    const times = dataset.orders.map((o) => Date.parse(o.orderedAt));
    expect([...times].sort((a, b) => a - b)).toEqual(times);
  });

  it('checks Luhn', () => {
    expect(isLuhnValid('4111111111111111')).toBe(true);
    expect(isLuhnValid('4111111111111112')).toBe(false);
    expect(isLuhnValid('378282246310005')).toBe(true);
    expect(isLuhnValid('')).toBe(false);
  });
});

describe('ensureDemoSeed', () => {
  let db: PGlite;
  let first: DemoSeedResult;

  beforeAll(async () => {
    db = await PGlite.create();
    first = await ensureDemoSeed(db);
  }, 60_000);

  afterAll(async () => {
    await db?.close();
  });

  it('loads every table quickly', async () => {
    expect(first.seeded).toBe(true);
    expect(first.elapsedMs).toBeLessThan(10_000);
    const counts = await db.query<Record<string, number>>(
      `select (select count(*)::int from customers) as customers, (select count(*)::int from products) as products,
              (select count(*)::int from orders) as orders, (select count(*)::int from order_items) as "orderItems"`,
    );
    expect(counts.rows[0]).toEqual(first.rows);
  });

  it('keeps foreign keys, totals and the view consistent', async () => {
    const problems = await db.query<Record<string, number>>(`
      select
        (select count(*)::int from orders o left join customers c on c.id = o.customer_id where c.id is null) as orphan_orders,
        (select count(*)::int from order_items i left join orders o on o.id = i.order_id where o.id is null) as orphan_items,
        (select count(*)::int from order_items i left join products p on p.id = i.product_id where p.id is null) as unknown_products,
        (select count(*)::int from orders o where o.total_cents <> (select sum(quantity * unit_price_cents) from order_items i where i.order_id = o.id)) as wrong_totals,
        (select count(*)::int from orders o join customers c on c.id = o.customer_id where o.ordered_at < c.created_at) as orders_before_signup,
        (select (select sum(total_cents) from orders) - (select sum(total_cents) from customer_order_totals))::int as view_gap`);
    expect(problems.rows[0]).toEqual({
      orphan_orders: 0,
      orphan_items: 0,
      unknown_products: 0,
      wrong_totals: 0,
      orders_before_signup: 0,
      view_gap: 0,
    });
    const foreignKeys = await db.query<{ n: number }>(
      "select count(*)::int as n from pg_constraint where contype = 'f' and connamespace = 'public'::regnamespace",
    );
    expect(foreignKeys.rows[0]?.n).toBe(3);
    const index = await db.query<{ n: number }>(
      "select count(*)::int as n from pg_indexes where tablename = 'orders' and indexdef like '%(customer_id)%'",
    );
    expect(index.rows[0]?.n).toBe(1);
  });

  it('marks the sensitive columns with comments', async () => {
    const comments = await db.query<{ table: string; column: string; comment: string | null }>(`
      select c.relname as table, a.attname as column, col_description(c.oid, a.attnum) as comment
      from pg_class c join pg_attribute a on a.attrelid = c.oid
      where c.relnamespace = 'public'::regnamespace and a.attnum > 0 and col_description(c.oid, a.attnum) like 'sensitive:%'`);
    const marked = comments.rows.map((r) => `${r.table}.${r.column}`).sort();
    expect(marked).toEqual(DEMO_SENSITIVE_COLUMNS.map((c) => `${c.table}.${c.column}`).sort());
  });

  it('does nothing the second time', async () => {
    const again = await ensureDemoSeed(db);
    expect(again.seeded).toBe(false);
    expect(again.version).toBe(first.version);
    expect(
      (await db.query<{ n: number }>('select count(*)::int as n from customers')).rows[0]?.n,
    ).toBe(2000);
  });
});
