import { describe, expect, it } from 'vitest';
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { judge, percentChange, welchTTest, type SampleSummary } from './welch.ts';

const side = (m: number, sd: number | undefined, n: number): SampleSummary => ({ mean: m, sd, n });

/** Relative error below `relative`. */
function expectClose(value: number | undefined, expected: number, relative = 1e-12) {
  expect(value).toBeDefined();
  expect(Math.abs(value! / expected - 1)).toBeLessThan(relative);
}

describe("Welch's t-test from summary statistics", () => {
  // Reference: scipy.stats.ttest_ind_from_stats(meanB, sdB, nB, meanA, sdA, nA, equal_var=False), SciPy 1.17.1;
  // df = (vA + vB)² / (vA²/(nA − 1) + vB²/(nB − 1)) by hand where it is a simple fraction.
  it('A: 10 ± 2 (n 5), B: 12 ± 3 (n 6): t 1.3188, df 8.6721, p 0.2210, not significant', () => {
    const a = side(10, 2, 5);
    const b = side(12, 3, 6);
    const result = welchTTest(a, b);
    // vA = 4/5 = 0.8, vB = 9/6 = 1.5: t = 2/√2.3, df = 2.3² / (0.8²/4 + 1.5²/5) = 5.29 / 0.61
    expect(result.difference).toBe(2);
    expectClose(result.standardError, Math.sqrt(2.3));
    expectClose(result.t, 1.3187609467915742);
    expectClose(result.df, 5.29 / 0.61);
    expectClose(result.df, 8.67213114754098);
    expectClose(result.p, 0.221009742779263);
    expect(judge(a, b).verdict).toBe('not significant');
    // B − A flips sign with the order; p does not change
    const reversed = welchTTest(b, a);
    expectClose(reversed.t, -1.3187609467915742);
    expectClose(reversed.p, 0.221009742779263);
  });

  it('clearly significant: A 100 ± 1 (n 10), B 110 ± 2 (n 10): t 14.14, p 2.27e-9', () => {
    const a = side(100, 1, 10);
    const b = side(110, 2, 10);
    const result = welchTTest(a, b);
    expectClose(result.t, 14.14213562373095); // 10 / √(0.1 + 0.4) = 10 / √0.5
    expectClose(result.df, 13.235294117647056); // 0.25 / (0.01/9 + 0.16/9) = 225 / 17
    expectClose(result.p, 2.2729646849230015e-9, 1e-10);
    expect(judge(a, b)).toMatchObject({ verdict: 'significant' });
  });

  it('clearly not significant: A 50 ± 10 (n 5), B 51 ± 12 (n 5): t 0.143, p 0.890', () => {
    const a = side(50, 10, 5);
    const b = side(51, 12, 5);
    const result = welchTTest(a, b);
    expectClose(result.t, 0.14314958357846705);
    expectClose(result.df, 7.7480478917230595);
    expectClose(result.p, 0.8898246331110583);
    expect(judge(a, b).verdict).toBe('not significant');
  });

  it('a p just above 0.05 is not significant: A 20 ± 0.5 (n 3), B 20.9 ± 0.4 (n 4): p 0.0657', () => {
    const result = welchTTest(side(20, 0.5, 3), side(20.9, 0.4, 4));
    expectClose(result.t, 2.5627265885317434);
    expectClose(result.df, 3.7975034674063806);
    expectClose(result.p, 0.06570852416345774);
    expect(judge(side(20, 0.5, 3), side(20.9, 0.4, 4)).verdict).toBe('not significant');
  });

  it('a published example: R t.test(ts1, ts2) prints t = -1.8325, df = 17.9, p-value = 0.08356', () => {
    // R's t.test is Welch's by default; the data and its printed output from a published R session.
    const ts1 = [11, 9, 10, 11, 10, 12, 9, 11, 12, 9];
    const ts2 = [11, 13, 10, 13, 12, 9, 11, 12, 12, 11];
    const a = side(mean(ts1), sampleStandardDeviation(ts1), ts1.length);
    const b = side(mean(ts2), sampleStandardDeviation(ts2), ts2.length);
    const result = welchTTest(b, a); // ts1 − ts2, as R reports it
    expect(result.t.toFixed(4)).toBe('-1.8325');
    expect(result.df!.toFixed(1)).toBe('17.9');
    expect(result.p.toFixed(5)).toBe('0.08356');
    // and to full precision against SciPy (ttest_ind(ts1, ts2, equal_var=False))
    expectClose(result.t, -1.8325416653445783);
    expectClose(result.df, 17.900310146211787);
    expectClose(result.p, 0.08355979161922325);
  });

  it('one side without spread: df is the other side’s n − 1', () => {
    const result = welchTTest(side(5, 0, 3), side(6, 1, 3));
    expectClose(result.t, Math.sqrt(3)); // 1 / √(1/3)
    expectClose(result.df, 2);
    expectClose(result.p, 0.22540333075851665); // ν = 2: p = 1 − t/√(2 + t²) = 1 − √3/√5
    expectClose(result.p, 1 - Math.sqrt(3 / 5));
  });

  it('neither side with spread: p is 1 for equal means, 0 for different ones (the limits as sd → 0)', () => {
    expect(welchTTest(side(7, 0, 3), side(7, 0, 4))).toEqual({ difference: 0, standardError: 0, t: 0, df: undefined, p: 1 });
    expect(welchTTest(side(7, 0, 3), side(8, 0, 4))).toMatchObject({ t: Number.POSITIVE_INFINITY, df: undefined, p: 0 });
    expect(welchTTest(side(7, 0, 3), side(6, 0, 4))).toMatchObject({ t: Number.NEGATIVE_INFINITY, p: 0 });
    expect(judge(side(7, 0, 3), side(7, 0, 4)).verdict).toBe('not significant');
    expect(judge(side(7, 0, 3), side(8, 0, 4)).verdict).toBe('significant');
  });

  it('refuses to judge with fewer than 2 repetitions on a side', () => {
    expect(judge(side(10, undefined, 1), side(12, 3, 6))).toEqual({ verdict: 'cannot judge', reason: 'n < 2' });
    expect(judge(side(10, 2, 5), side(12, undefined, 1))).toEqual({ verdict: 'cannot judge', reason: 'n < 2' });
    // even with a huge difference: one value has no spread to judge by
    expect(judge(side(1, undefined, 1), side(1e9, 1, 100)).verdict).toBe('cannot judge');
    expect(() => welchTTest(side(10, undefined, 1), side(12, 3, 6))).toThrow(/A needs n ≥ 2, got 1/);
    expect(() => welchTTest(side(10, 2, 5), side(12, Number.NaN, 6))).toThrow(/B sd must be a finite number/);
    expect(() => welchTTest(side(10, -1, 5), side(12, 1, 6))).toThrow(RangeError);
  });
});

describe('percent change', () => {
  it('is (B − A) / |A| × 100', () => {
    expect(percentChange(10, 12)).toBeCloseTo(20, 12);
    expect(percentChange(200, 150)).toBeCloseTo(-25, 12);
    expect(percentChange(-4, -2)).toBeCloseTo(50, 12); // higher than a negative baseline: +
  });

  it('is 0 from 0 to 0 and undefined from 0 to anything else', () => {
    expect(percentChange(0, 0)).toBe(0);
    expect(percentChange(0, 3)).toBeUndefined();
  });
});
