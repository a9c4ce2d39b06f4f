import { describe, expect, it } from 'vitest';
import { summarize, tQuantile95 } from './statistics.ts';

describe('summary statistics', () => {
  it('gives mean, sample sd and a t-based 95% CI', () => {
    const s = summarize([2, 4, 4, 4, 5, 5, 7, 9])!;
    expect(s.mean).toBe(5);
    expect(s.sd).toBeCloseTo(2.13809, 5);
    const half = (2.365 * 2.13809) / Math.sqrt(8);
    expect(s.ci95Low).toBeCloseTo(5 - half, 4);
    expect(s.ci95High).toBeCloseTo(5 + half, 4);
  });

  it('has no spread for one value and nothing for none', () => {
    expect(summarize([3])).toEqual({ n: 1, mean: 3, sd: undefined, ci95Low: undefined, ci95High: undefined });
    expect(summarize([])).toBeUndefined();
    expect(summarize([Number.NaN])).toBeUndefined();
  });

  it('uses the normal quantile beyond the t table', () => {
    expect(tQuantile95(1)).toBe(12.706);
    expect(tQuantile95(1000)).toBe(1.96);
  });
});
