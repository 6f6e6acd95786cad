/** A growable list of `(kind, start, end)` triples, reused across values to avoid allocation. */
export class SpanList {
  /** Triples: kind index, start, end. */
  data = new Int32Array(48);
  /** Number of spans. */
  length = 0;

  /** Appends a span. */
  push(kind: number, start: number, end: number): void {
    const at = this.length * 3;
    if (at + 3 > this.data.length) {
      const grown = new Int32Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[at] = kind;
    this.data[at + 1] = start;
    this.data[at + 2] = end;
    this.length++;
  }

  /**
   * Sorts by start and merges overlapping spans into their union, which takes the kind of its
   * longest member: a span is never partly kept, so nothing of an overlapped finding leaks.
   */
  normalize(): void {
    const d = this.data;
    const n = this.length;
    if (n < 2) return;
    // Insertion sort: a value rarely holds more than a handful of findings.
    for (let i = 1; i < n; i++) {
      const k = d[i * 3]!;
      const s = d[i * 3 + 1]!;
      const e = d[i * 3 + 2]!;
      let j = i - 1;
      while (j >= 0 && d[j * 3 + 1]! > s) {
        d[j * 3 + 3] = d[j * 3]!;
        d[j * 3 + 4] = d[j * 3 + 1]!;
        d[j * 3 + 5] = d[j * 3 + 2]!;
        j--;
      }
      d[j * 3 + 3] = k;
      d[j * 3 + 4] = s;
      d[j * 3 + 5] = e;
    }
    let out = 0;
    let longest = d[2]! - d[1]!;
    for (let i = 1; i < n; i++) {
      const k = d[i * 3]!;
      const s = d[i * 3 + 1]!;
      const e = d[i * 3 + 2]!;
      const o = out * 3;
      if (s < d[o + 2]!) {
        if (e - s > longest) {
          longest = e - s;
          d[o] = k;
        }
        if (e > d[o + 2]!) d[o + 2] = e;
      } else {
        out++;
        d[out * 3] = k;
        d[out * 3 + 1] = s;
        d[out * 3 + 2] = e;
        longest = e - s;
      }
    }
    this.length = out + 1;
  }
}
