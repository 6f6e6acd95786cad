/**
 * A 64-bit fingerprint (16 hex digits) of parsed statements, equal for statements that
 * differ only in literal values, parameter numbers, spelling (case, spacing, quoting of
 * identifiers that need none, comments) or the length of constant lists (`IN (1, 2, 3)`,
 * multi-row `VALUES` of constants).
 *
 * It hashes a canonical walk of libpg-query's parse tree, the way libpg-query's own
 * fingerprint does, but in JavaScript with an explicit stack: libpg-query's
 * `fingerprintSync` recurses with stack frames so large once V8 optimizes it that about
 * thirty levels of nesting overflow the stack, and an overflow inside the WebAssembly module
 * leaves it broken. The values therefore differ from libpg-query's fingerprints.
 */
export function fingerprintStatements(statements: readonly unknown[]): string {
  const hash = new Hash64();
  // Two stacks in step: a value to walk, or (for a tag other than WALK) a symbol to hash.
  const values: unknown[] = [];
  const tags: number[] = [];
  for (let i = statements.length - 1; i >= 0; i--) {
    values.push(undefined, statements[i]);
    tags.push(END_STATEMENT, WALK);
  }
  while (values.length > 0) {
    const item = values.pop();
    const tag = tags.pop()!;
    if (tag !== WALK) {
      hash.addSymbol(tag);
    } else if (Array.isArray(item)) {
      if (item.length > 0 && item.every(isConstant)) {
        hash.addSymbol(CONSTANT_LIST);
      } else if (item.length > 0 && item.every(isConstantRow)) {
        hash.addSymbol(CONSTANT_ROWS);
      } else {
        hash.addSymbol(OPEN_ARRAY);
        values.push(undefined);
        tags.push(CLOSE_ARRAY);
        for (let i = item.length - 1; i >= 0; i--) {
          values.push(item[i]);
          tags.push(WALK);
        }
      }
    } else if (typeof item === 'object' && item !== null) {
      const node = item as Record<string, unknown>;
      if (isConstant(node)) {
        hash.addSymbol(CONSTANT);
        continue;
      }
      hash.addSymbol(OPEN_OBJECT);
      values.push(undefined);
      tags.push(CLOSE_OBJECT);
      const keys = Object.keys(node);
      for (let i = keys.length - 1; i >= 0; i--) {
        const key = keys[i]!;
        if (IGNORED_FIELDS.has(key)) continue;
        values.push(node[key], undefined); // the key's symbol pops first, then its value
        tags.push(WALK, symbolOf(key));
      }
    } else if (typeof item === 'string') {
      hash.addSymbol(STRING);
      hash.addText(item);
    } else if (item !== undefined) {
      hash.addSymbol(OTHER);
      hash.addText(String(item));
    }
  }
  return hash.digest();
}

// Symbols: fixed ones below FIRST_NAME, then one per field or node type name met.
const WALK = 0;
const END_STATEMENT = 1;
const OPEN_ARRAY = 2;
const CLOSE_ARRAY = 3;
const OPEN_OBJECT = 4;
const CLOSE_OBJECT = 5;
const CONSTANT = 6;
const CONSTANT_LIST = 7;
const CONSTANT_ROWS = 8;
const STRING = 9;
const OTHER = 10;
const FIRST_NAME = 16;

/**
 * Field and node type names as small numbers, so each costs one step of the hash. The names
 * come from libpg-query's output, a fixed set of a few hundred.
 */
const names = new Map<string, number>();

function symbolOf(name: string): number {
  let id = names.get(name);
  if (id === undefined) {
    // Derived from the name itself, not from the order names are met, so fingerprints do not
    // depend on what the process analyzed before.
    id = FIRST_NAME + (textHash(name) >>> 4);
    names.set(name, id);
  }
  return id;
}

function textHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return mix(h);
}

/** Positions say where, not what. */
const IGNORED_FIELDS = new Set([
  'location',
  'name_location',
  'stmt_location',
  'stmt_len',
  'list_start',
  'list_end',
  'rexpr_list_start',
  'rexpr_list_end',
]);

/** A literal or a `$n` parameter, wrapped (`{ A_Const: … }`). */
function isConstant(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const node = value as Record<string, unknown>;
  if (node.A_Const === undefined && node.ParamRef === undefined) return false;
  let fields = 0;
  for (const _ in node) if (++fields > 1) return false;
  return true;
}

/** A row of constants: `{ List: { items: [constants] } }`, as in `VALUES (1, 'a')`. */
function isConstantRow(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const list = (value as Record<string, unknown>).List;
  if (typeof list !== 'object' || list === null) return false;
  const items = (list as Record<string, unknown>).items;
  return Array.isArray(items) && items.length > 0 && items.every(isConstant);
}

/**
 * Two 32-bit multiplicative hashes, each finished with MurmurHash3's mixer; together 64
 * bits, plenty to group statements.
 */
class Hash64 {
  #a = 0x811c9dc5;
  #b = 0x9747b28c;

  addSymbol(symbol: number): void {
    this.#a = Math.imul(this.#a ^ symbol, 0x01000193);
    const b = Math.imul(this.#b ^ symbol, 0x5bd1e995);
    this.#b = b ^ (b >>> 15);
  }

  addText(text: string): void {
    let a = this.#a;
    let b = this.#b;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x5bd1e995);
      b ^= b >>> 15;
    }
    // Ends with a value no code unit has, so ('ab', 'c') and ('a', 'bc') differ.
    this.#a = Math.imul(a ^ 0x10000, 0x01000193);
    this.#b = Math.imul(b ^ 0x10000, 0x5bd1e995);
  }

  digest(): string {
    return hex(mix(this.#a)) + hex(mix(this.#b ^ 0x5f3759df));
  }
}

function mix(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
