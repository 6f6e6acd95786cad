/**
 * Canonical JSON: the one byte-exact text of a value that the hash chain signs. Object keys are
 * sorted by UTF-16 code unit (`Array.prototype.sort`'s default), there is no whitespace,
 * properties whose value is `undefined` are left out (as `JSON.stringify` does), and arrays keep
 * their order. Only plain JSON values are accepted: a non-finite number, a bigint, a function or
 * a symbol throws, because any of them would make two different events hash alike.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: ${value} is not JSON`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item: unknown = value[i];
          // JSON.stringify writes holes and undefined items as null; so do we.
          out += item === undefined ? 'null' : canonicalJson(item);
        }
        return out + ']';
      }
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const key of keys) {
        const item = record[key];
        if (item === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(key) + ':' + canonicalJson(item);
      }
      return out + '}';
    }
    default:
      throw new TypeError(`canonicalJson: a ${typeof value} is not JSON`);
  }
}
