import { describe, expect, it } from 'vitest';
import { summarize, tQuantile, tQuantile95 } from './statistics.ts';

/** A table value printed with `decimals` decimals must be the correctly rounded one. */
function expectTableValue(value: number, published: number, decimals = 4) {
  expect(Math.abs(value - published)).toBeLessThanOrEqual(0.5 * 10 ** -decimals + 1e-12);
}

describe('Student t quantile', () => {
  it('matches published two-sided 95% values (p = 0.975)', () => {
    const table: [number, number][] = [
      [1, 12.7062], [2, 4.3027], [3, 3.1824], [5, 2.5706], [7, 2.3646], [10, 2.2281], [30, 2.0423], [31, 2.0395],
      [60, 2.0003], [120, 1.9799], [1e6, 1.96],
    ];
    for (const [df, published] of table) {
      expectTableValue(tQuantile(0.975, df), published);
      expectTableValue(tQuantile95(df), published);
    }
  });

  it('matches published two-sided 99% and 99.9% and one-sided 95% values', () => {
    const table: [p: number, df: number, published: number][] = [
      [0.995, 1, 63.6567], [0.995, 5, 4.0321], [0.995, 10, 3.1693], [0.995, 30, 2.75], [0.995, 120, 2.6174],
      [0.9995, 10, 4.5869], [0.95, 10, 1.8125], [0.95, 30, 1.6973],
    ];
    for (const [p, df, published] of table) expectTableValue(tQuantile(p, df), published);
  });

  it('agrees with exact closed forms for 1, 2 and 4 degrees of freedom', () => {
    for (const p of [0.001, 0.2, 0.51, 0.75, 0.9, 0.975, 0.995, 0.9999, 1 - 1e-9]) {
      const q = Math.min(p, 1 - p);
      const sign = Math.sign(p - 0.5);
      // ν = 1 (Cauchy): t = cot(π q); ν = 2: t = (2p − 1)/√(2p(1 − p)); ν = 4: 2√(cos(⅓ arccos √α)/√α − 1), α = 4p(1 − p)
      const df1 = sign / Math.tan(Math.PI * q);
      const df2 = (2 * p - 1) / Math.sqrt(2 * p * (1 - p));
      const alpha = 4 * p * (1 - p);
      const df4 = sign * 2 * Math.sqrt(Math.cos(Math.acos(Math.sqrt(alpha)) / 3) / Math.sqrt(alpha) - 1);
      expect(Math.abs(tQuantile(p, 1) / df1 - 1)).toBeLessThan(1e-11);
      expect(Math.abs(tQuantile(p, 2) / df2 - 1)).toBeLessThan(1e-11);
      expect(Math.abs(tQuantile(p, 4) / df4 - 1)).toBeLessThan(1e-11);
    }
  });

  it('agrees with an independent implementation to 12 digits, non-integer df and lower tails too', () => {
    // scipy.stats.t.ppf(p, df), SciPy 1.17
    const reference: [p: number, df: number, t: number][] = [
      [0.975, 3, 3.1824463052837078], [0.975, 7, 2.364624251592784], [0.995, 10, 3.16927267261695],
      [0.9995, 1, 636.6192487687897], [0.9, 2.5, 1.7302509288071766], [0.025, 7, -2.3646242515927844],
      [0.99, 1000, 2.330082674755513], [1e-6, 3, -103.29946778041935],
    ];
    for (const [p, df, t] of reference) expect(Math.abs(tQuantile(p, df) / t - 1)).toBeLessThan(1e-12);
  });

  it('is symmetric, 0 at the median, and refuses what has no quantile', () => {
    expect(tQuantile(0.5, 3)).toBe(0);
    expect(tQuantile(0.1, 9)).toBeCloseTo(-tQuantile(0.9, 9), 13);
    expect(() => tQuantile(1, 5)).toThrow(RangeError);
    expect(() => tQuantile(0, 5)).toThrow(RangeError);
    expect(() => tQuantile(Number.NaN, 5)).toThrow(RangeError);
    expect(() => tQuantile(0.975, 0)).toThrow(RangeError);
    expect(() => tQuantile(0.975, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('summary statistics', () => {
  it('gives mean, sample sd and a t-based 95% CI', () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9])!;
    expect(s.n).toBe(8);
    expect(s.mean).toBe(5);
    expect(s.sd).toBeCloseTo(2.13809, 5);
    const half = (2.364624 * 2.138090) / Math.sqrt(8); // t(0.975, 7) from tables
    expect(s.ci95Low).toBeCloseTo(5 - half, 5);
    expect(s.ci95High).toBeCloseTo(5 + half, 5);
  });

  it('has no spread for one value and nothing for none', () => {
    expect(summarize([3])).toEqual({ n: 1, mean: 3, sd: undefined, ci95Low: undefined, ci95High: undefined });
    expect(summarize([])).toBeUndefined();
  });

  it('refuses NaN and ±Infinity, naming what they are', () => {
    expect(() => summarize([1, Number.NaN], 'scan_cpu_ms')).toThrow("scan_cpu_ms has a non-finite value at position 2 of 2: NaN");
    expect(() => summarize([Number.POSITIVE_INFINITY])).toThrow(/values has a non-finite value at position 1 of 1: Infinity/);
    expect(() => summarize([1, 2, Number.NEGATIVE_INFINITY], 'x')).toThrow(/-Infinity/);
  });
});
