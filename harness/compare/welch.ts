/**
 * Welch's t-test from summary statistics: is the difference between two runs' means larger than their
 * repetition-to-repetition spread explains?
 *
 * Each side is what summary.csv holds for one row: the mean, the sample standard deviation s (n − 1 in the
 * denominator) and n, the number of repetitions that measured the metric. The variances need not be equal
 * (Welch 1947; Satterthwaite 1946):
 *
 *     vA = sA² / nA,   vB = sB² / nB,   t = (meanB − meanA) / √(vA + vB)
 *     ν  = (vA + vB)² / (vA² / (nA − 1) + vB² / (nB − 1))          (Welch–Satterthwaite)
 *     p  = 2 · P(T_ν ≤ −|t|)                                        (two-sided)
 *
 * The same as scipy.stats.ttest_ind_from_stats(meanB, sB, nB, meanA, sA, nA, equal_var=False).
 * The difference is significant at 95% when p < 0.05. With fewer than 2 repetitions on a side there is no
 * spread to compare against: no verdict is made up.
 */
import { tCdf } from '../experiment/statistics.ts';

/** One side of a comparison: what summary.csv says about a metric over a run's repetitions. */
export interface SampleSummary {
  mean: number;
  /** Sample standard deviation; undefined with a single repetition. */
  sd?: number | undefined;
  /** Number of repetitions. */
  n: number;
}

export interface WelchResult {
  /** mean of B − mean of A */
  difference: number;
  /** √(sA²/nA + sB²/nB) */
  standardError: number;
  /** difference / standardError: positive when B is higher */
  t: number;
  /**
   * Welch–Satterthwaite degrees of freedom (not an integer in general). Undefined when neither side has any
   * spread (sd 0 on both): then t is 0 (same means, p = 1) or ±Infinity (different means, p = 0), the
   * limits of the test as both sds go to 0.
   */
  df: number | undefined;
  /** Two-sided p-value. */
  p: number;
}

/** The significance level of `xme compare`: 95% confidence, two-sided. */
export const ALPHA = 0.05;

function checkSide(side: SampleSummary, name: string): number {
  if (!Number.isInteger(side.n) || side.n < 2) throw new RangeError(`welchTTest: ${name} needs n ≥ 2, got ${side.n}`);
  if (!Number.isFinite(side.mean)) throw new RangeError(`welchTTest: ${name} mean must be finite, got ${side.mean}`);
  if (side.sd === undefined || !(side.sd >= 0) || !Number.isFinite(side.sd))
    throw new RangeError(`welchTTest: ${name} sd must be a finite number ≥ 0, got ${side.sd}`);
  return (side.sd * side.sd) / side.n;
}

/** Welch's two-sample t-test of B against A (see the top of this file). Throws RangeError with n < 2 or no sd. */
export function welchTTest(a: SampleSummary, b: SampleSummary): WelchResult {
  const va = checkSide(a, 'A');
  const vb = checkSide(b, 'B');
  const difference = b.mean - a.mean;
  const variance = va + vb;
  const standardError = Math.sqrt(variance);
  if (variance === 0) {
    if (difference === 0) return { difference, standardError, t: 0, df: undefined, p: 1 };
    return { difference, standardError, t: Math.sign(difference) * Number.POSITIVE_INFINITY, df: undefined, p: 0 };
  }
  const t = difference / standardError;
  const df = (variance * variance) / ((va * va) / (a.n - 1) + (vb * vb) / (b.n - 1));
  const p = Math.min(1, 2 * tCdf(-Math.abs(t), df));
  return { difference, standardError, t, df, p };
}

export type Verdict = 'significant' | 'not significant' | 'cannot judge';

export interface Judgement {
  verdict: Verdict;
  /** Why no verdict could be made ('cannot judge'), e.g. "n < 2". */
  reason?: string;
  /** The test, when it could be made. */
  welch?: WelchResult;
}

/**
 * Is B's mean significantly different from A's at the 1 − alpha level (default 95%), by Welch's t-test?
 * Refuses ("cannot judge") when a side has fewer than 2 repetitions or no sd.
 */
export function judge(a: SampleSummary, b: SampleSummary, alpha = ALPHA): Judgement {
  if (a.n < 2 || b.n < 2) return { verdict: 'cannot judge', reason: 'n < 2' };
  if (a.sd === undefined || b.sd === undefined) return { verdict: 'cannot judge', reason: 'no sd' };
  const welch = welchTTest(a, b);
  return { verdict: welch.p < alpha ? 'significant' : 'not significant', welch };
}

/**
 * (B − A) / |A| × 100: how much B differs from A, in % of A. 0 when both are 0; undefined when A is 0 and B
 * is not (no finite percentage).
 */
export function percentChange(a: number, b: number): number | undefined {
  if (a === 0) return b === 0 ? 0 : undefined;
  return ((b - a) / Math.abs(a)) * 100;
}
