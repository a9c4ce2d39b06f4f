import { describe, expect, it } from 'vitest';
import { summarize, tCdf, tQuantile, tQuantile95 } from './statistics.ts';

/** A table value printed with `decimals` decimals must be the correctly rounded one. */
function expectTableValue(value: number, published: number, decimals = 4) {
  expect(Math.abs(value - published)).toBeLessThanOrEqual(0.5 * 10 ** -decimals + 1e-12);
}

describe('Student t quantile', () => {
  it('matches published two-sided 95% values (p = 0.975)', () => {
    const table: [number, number][] = [
      [1, 12.7062],
      [2, 4.3027],
      [3, 3.1824],
      [5, 2.5706],
      [7, 2.3646],
      [10, 2.2281],
      [30, 2.0423],
      [31, 2.0395],
      [60, 2.0003],
      [120, 1.9799],
      [1e6, 1.96],
    ];
    for (const [df, published] of table) {
      expectTableValue(tQuantile(0.975, df), published);
      expectTableValue(tQuantile95(df), published);
    }
  });

  it('matches published two-sided 99% and 99.9% and one-sided 95% values', () => {
    const table: [p: number, df: number, published: number][] = [
      [0.995, 1, 63.6567],
      [0.995, 5, 4.0321],
      [0.995, 10, 3.1693],
      [0.995, 30, 2.75],
      [0.995, 120, 2.6174],
      [0.9995, 10, 4.5869],
      [0.95, 10, 1.8125],
      [0.95, 30, 1.6973],
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
      [0.975, 3, 3.1824463052837078],
      [0.975, 7, 2.364624251592784],
      [0.995, 10, 3.16927267261695],
      [0.9995, 1, 636.6192487687897],
      [0.9, 2.5, 1.7302509288071766],
      [0.025, 7, -2.3646242515927844],
      [0.99, 1000, 2.330082674755513],
      [1e-6, 3, -103.29946778041935],
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

describe('Student t CDF', () => {
  it('gives the levels of published t-table critical values', () => {
    // printed tables (4 decimals): P(T ≤ t) at the two-sided 90%, 95% and 99% critical values
    const table: [p: number, df: number, t: number][] = [
      [0.975, 1, 12.7062],
      [0.975, 2, 4.3027],
      [0.975, 5, 2.5706],
      [0.975, 10, 2.2281],
      [0.975, 30, 2.0423],
      [0.975, 120, 1.9799],
      [0.995, 10, 3.1693],
      [0.995, 30, 2.75],
      [0.95, 10, 1.8125],
      [0.95, 30, 1.6973],
    ];
    // a t rounded to 4 decimals moves the CDF by at most density × 5e-5 < 2e-5
    for (const [p, df, t] of table) {
      expect(Math.abs(tCdf(t, df) - p)).toBeLessThan(2e-5);
      expect(Math.abs(tCdf(-t, df) - (1 - p))).toBeLessThan(2e-5);
    }
  });

  it('agrees with the closed forms for 1, 2 and 3 degrees of freedom', () => {
    for (const t of [-50, -3.5, -1, -0.2, 0, 0.3, 1, 2.5, 7, 300]) {
      // ν = 1: ½ + atan(t)/π; ν = 2: ½ + t / (2√(2 + t²)); ν = 3: ½ + (atan(t/√3) + √3·t/(3 + t²)) / π
      expect(tCdf(t, 1)).toBeCloseTo(0.5 + Math.atan(t) / Math.PI, 13);
      expect(tCdf(t, 2)).toBeCloseTo(0.5 + t / (2 * Math.sqrt(2 + t * t)), 13);
      expect(tCdf(t, 3)).toBeCloseTo(0.5 + (Math.atan(t / Math.sqrt(3)) + (Math.sqrt(3) * t) / (3 + t * t)) / Math.PI, 13);
    }
  });

  it('agrees with an independent implementation, small tails and non-integer df too', () => {
    // scipy.stats.t.cdf(t, df), SciPy 1.17.1
    const reference: [t: number, df: number, cdf: number][] = [
      [2, 10, 0.9633059826146299],
      [-2, 10, 0.03669401738537018],
      [0.5, 1, 0.6475836176504333],
      [3, 2, 0.9522670168666454],
      [-1.5, 3, 0.11529193262241147],
      [2.5, 4.5, 0.9700471567488997],
      [10, 5, 0.9999145262121285],
      [-10, 5, 8.547378787148181e-5],
      [0.1, 30, 0.5394951941048645],
      [1.96, 1e6, 0.9750019662073651],
      [4, 2.25, 0.9765542793055622],
      [-6, 7.3, 0.00023087223893739333],
      [1.3187609467915742, 8.672131147540984, 0.8894951286103685],
    ];
    // relative error about 1e-14, growing like ν·1e-17 for large ν (see statistics.ts)
    for (const [t, df, cdf] of reference) expect(Math.abs(tCdf(t, df) / cdf - 1)).toBeLessThan(df < 1e5 ? 1e-13 : 1e-11);
  });

  it('is ½ at 0, 0 and 1 at the infinities, and refuses what has no value', () => {
    expect(tCdf(0, 7)).toBe(0.5);
    expect(tCdf(Number.POSITIVE_INFINITY, 3)).toBe(1);
    expect(tCdf(Number.NEGATIVE_INFINITY, 3)).toBe(0);
    expect(tCdf(1e300, 3)).toBe(1);
    expect(() => tCdf(Number.NaN, 3)).toThrow(RangeError);
    expect(() => tCdf(1, 0)).toThrow(RangeError);
    expect(() => tCdf(1, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('summary statistics', () => {
  it('gives mean, sample sd and a t-based 95% CI', () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9])!;
    expect(s.n).toBe(8);
    expect(s.mean).toBe(5);
    expect(s.sd).toBeCloseTo(2.13809, 5);
    const half = (2.364624 * 2.13809) / Math.sqrt(8); // t(0.975, 7) from tables
    expect(s.ci95Low).toBeCloseTo(5 - half, 5);
    expect(s.ci95High).toBeCloseTo(5 + half, 5);
  });

  it('has no spread for one value and nothing for none', () => {
    expect(summarize([3])).toEqual({ n: 1, mean: 3, sd: undefined, ci95Low: undefined, ci95High: undefined });
    expect(summarize([])).toBeUndefined();
  });

  it('refuses NaN and ±Infinity, naming what they are', () => {
    expect(() => summarize([1, Number.NaN], 'scan_cpu_ms')).toThrow('scan_cpu_ms has a non-finite value at position 2 of 2: NaN');
    expect(() => summarize([Number.POSITIVE_INFINITY])).toThrow(/values has a non-finite value at position 1 of 1: Infinity/);
    expect(() => summarize([1, 2, Number.NEGATIVE_INFINITY], 'x')).toThrow(/-Infinity/);
  });
});
