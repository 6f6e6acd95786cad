import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from './parse-duration.js';

describe('parseDuration', () => {
  it('reads each unit and combinations, largest first', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('30m')).toBe(1_800_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('2d')).toBe(172_800_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1d2h3m4s')).toBe(93_784_000);
    expect(parseDuration(' 1H ')).toBe(3_600_000);
  });

  it('refuses what is probably a mistake', () => {
    for (const text of [
      '',
      '1',
      '60',
      'h',
      '1.5h',
      '-1h',
      '0m',
      '0s0m',
      '30m1h',
      '1h1h',
      '1 h',
      '1w',
      '1hour',
      '9999999999999999d',
    ]) {
      expect(parseDuration(text), text).toBeUndefined();
    }
  });

  it('round-trips through formatDuration', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), (seconds) => {
        expect(parseDuration(formatDuration(seconds * 1000))).toBe(seconds * 1000);
      }),
    );
  });
});

describe('formatDuration', () => {
  it('writes whole seconds, largest unit first', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(999)).toBe('0s');
    expect(formatDuration(-5000)).toBe('0s');
    expect(formatDuration(61_000)).toBe('1m1s');
    expect(formatDuration(3_600_000)).toBe('1h');
    expect(formatDuration(90_061_000)).toBe('1d1h1m1s');
  });
});
