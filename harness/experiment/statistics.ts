/** Mean, standard deviation and 95% confidence interval over repetitions (simple-statistics + Student's t: quantile and CDF). */
import { mean, sampleStandardDeviation } from 'simple-statistics';
import { XmeError } from '../util/errors.ts';

/*
 * Student's t quantile, computed (no table, no normal approximation).
 *
 * For t ≥ 0 the upper tail of Student's t with ν degrees of freedom is
 *
 *     P(T > t) = ½ · I_x(ν/2, ½),   x = ν / (ν + t²),   1 − x = t² / (ν + t²)
 *
 * where I_x(a, b) is the regularized incomplete beta function (Abramowitz & Stegun 26.7.1 with 26.5.27).
 * I_x(a, b) = x^a (1−x)^b / (a·B(a, b)) · CF(a, b, x), where CF is the continued fraction of A&S 26.5.8,
 * evaluated with the modified Lentz method (Numerical Recipes §6.4); it converges fast for
 * x < (a+1)/(a+b+2), otherwise I_x(a, b) = 1 − I_{1−x}(b, a) is used. x and 1−x are passed separately so
 * that neither is computed as 1 minus a number close to 1. log B(a, b) comes from a Stirling series of
 * ln Γ; for large a the difference ln Γ(a) − ln Γ(a+b) is taken in closed form with log1p, so that large ν
 * (10⁶ and beyond) loses no digits to cancellation.
 *
 * The quantile solves P(T > t) = q (q = 1 − p for p > ½; symmetry for p < ½) by Newton's method on
 * ln P(T > t) against ln t (d ln P / d ln t = −t·f(t)/P(T > t), f the t density), which converges in a few
 * steps for heavy (ν = 1) and light (large ν) tails alike; every step is kept inside a bracket that
 * bisection narrows when Newton would leave it, so it always converges.
 *
 * Accuracy (checked against SciPy's t.ppf over p from 1e-8 to 1 − 1e-12 and ν from 1 to 10¹⁰, and against
 * the closed forms for ν = 1, 2, 4): relative error about 1e-14 for ν up to 10⁴ (the harness's ν is n − 1
 * ≤ 999), 3e-13 at 10⁵, 3e-12 at 10⁶, 5e-10 at 10⁸. It grows like ν·1e-17 because for large a the continued
 * fraction's terms are −1 + O(1/a) and their sums cancel; still far below the 4 decimals of printed tables.
 * Near p = ½ the absolute error is about 1e-16 (the relative one grows as t → 0). ν need not be an integer.
 */

/** ln Γ(x) for x > 0: Stirling's series after shifting x to ≥ 10 (error below 1e-15 relative there). */
function lnGamma(x: number): number {
  let shift = 0;
  while (x < 10) {
    shift -= Math.log(x);
    x += 1;
  }
  return shift + (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) + stirlingCorrection(x);
}

/** ln Γ(x) − [(x − ½) ln x − x + ½ ln 2π] for x ≥ 10: 1/(12x) − 1/(360x³) + 1/(1260x⁵) − 1/(1680x⁷) + 1/(1188x⁹). */
function stirlingCorrection(x: number): number {
  const x2 = x * x;
  return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * x2)) / x2) / x2) / x2) / x;
}

/** ln B(a, b) = ln Γ(a) + ln Γ(b) − ln Γ(a + b), without cancellation when a is large. */
function lnBeta(a: number, b: number): number {
  if (a < b) [a, b] = [b, a];
  if (b >= 10) return lnGamma(a) + lnGamma(b) - lnGamma(a + b);
  if (a >= 10) {
    // ln Γ(a) − ln Γ(a+b) = −b ln(a+b) − (a − ½) ln(1 + b/a) + b + corr(a) − corr(a+b)
    return lnGamma(b) - b * Math.log(a + b) - (a - 0.5) * Math.log1p(b / a) + b + stirlingCorrection(a) - stirlingCorrection(a + b);
  }
  return lnGamma(a) + lnGamma(b) - lnGamma(a + b);
}

/** Continued fraction of I_x(a, b) (A&S 26.5.8), modified Lentz. */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const clamp = (v: number) => (Math.abs(v) < tiny ? tiny : v);
  let c = 1;
  let d = 1 / clamp(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= 10_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 / clamp(1 + aa * d);
    c = clamp(1 + aa / c);
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 / clamp(1 + aa * d);
    c = clamp(1 + aa / c);
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) return h;
  }
  throw new Error(`incomplete beta: continued fraction did not converge (a=${a}, b=${b}, x=${x})`);
}

/** Regularized incomplete beta I_x(a, b), given x and y = 1 − x computed separately. */
function regularizedBeta(a: number, b: number, x: number, y: number): number {
  if (x <= 0) return 0;
  if (y <= 0) return 1;
  // ln x of an x close to 1 is taken as log1p(−y): Math.log(x) would lose the digits x lost by rounding.
  const lnX = x > 0.5 ? Math.log1p(-y) : Math.log(x);
  const lnY = y > 0.5 ? Math.log1p(-x) : Math.log(y);
  const lnFront = a * lnX + b * lnY - lnBeta(a, b);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lnFront) * betaContinuedFraction(a, b, x)) / a;
  return 1 - (Math.exp(lnFront) * betaContinuedFraction(b, a, y)) / b;
}

/** P(T > t) for t ≥ 0, Student's t with `df` degrees of freedom. */
function tUpperTail(t: number, df: number): number {
  const t2 = t * t;
  return 0.5 * regularizedBeta(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
}

/**
 * The cumulative distribution function of Student's t with `df` degrees of freedom: P(T ≤ t).
 * Each tail is computed directly as ½ · I_x(ν/2, ½) (see above), never as 1 minus the other side, so a
 * small lower tail keeps its relative precision: a two-sided p-value is 2 · tCdf(−|t|, df).
 * `df` is any finite number > 0 (not only an integer); t = ±Infinity gives 0 or 1.
 */
export function tCdf(t: number, df: number): number {
  if (Number.isNaN(t)) throw new RangeError(`tCdf: t must be a number, got ${t}`);
  if (!(df > 0 && Number.isFinite(df))) throw new RangeError(`tCdf: degrees of freedom must be a finite number above 0, got ${df}`);
  if (t === Number.POSITIVE_INFINITY) return 1;
  if (t === Number.NEGATIVE_INFINITY) return 0;
  return t < 0 ? tUpperTail(-t, df) : 1 - tUpperTail(t, df);
}

/** ln of the Student t density at t. */
function tLnDensity(t: number, df: number): number {
  return -0.5 * Math.log(df) - lnBeta(df / 2, 0.5) - ((df + 1) / 2) * Math.log1p((t * t) / df);
}

/**
 * The p-quantile of Student's t distribution with `df` degrees of freedom: the t with P(T ≤ t) = p.
 * For a two-sided interval of confidence c use p = (1 + c) / 2, e.g. tQuantile(0.975, df) for 95%.
 * `df` is any finite number > 0 (not only an integer).
 */
export function tQuantile(p: number, df: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`tQuantile: p must be between 0 and 1 (exclusive), got ${p}`);
  if (!(df > 0 && Number.isFinite(df))) throw new RangeError(`tQuantile: degrees of freedom must be a finite number above 0, got ${df}`);
  if (p === 0.5) return 0;
  // By symmetry solve P(T > t) = q for t > 0 with q = min(p, 1 − p): 1 − p is exact for p ≥ ½ (Sterbenz),
  // while the p of a lower quantile is used as it is (1 − (1 − p) would round it).
  const sign = p > 0.5 ? 1 : -1;
  const q = p > 0.5 ? 1 - p : p;
  const lnQ = Math.log(q);

  // Bracket the root: lo has tail > q, hi has tail ≤ q (tails fall with t).
  let lo = 0;
  let hi = 2;
  while (tUpperTail(hi, df) > q) {
    lo = hi;
    hi *= 2;
    if (!Number.isFinite(hi)) throw new RangeError(`tQuantile: no finite quantile for p=${p}, df=${df}`);
  }

  let t = lo > 0 ? Math.sqrt(lo * hi) : hi / 2;
  for (let i = 0; i < 200; i++) {
    const tail = tUpperTail(t, df);
    if (tail === q) return sign * t;
    if (tail > q) lo = t;
    else hi = t;
    // Newton on ln tail(t) − ln q against ln t.
    const slope = -Math.exp(Math.log(t) + tLnDensity(t, df) - Math.log(tail)); // d ln tail / d ln t
    let next = t * Math.exp(-(Math.log(tail) - lnQ) / slope);
    if (!(next > lo && next < hi)) next = lo > 0 ? Math.sqrt(lo * hi) : hi / 2;
    if (Math.abs(next - t) <= 1e-15 * t || hi - lo <= 1e-15 * hi) return sign * next;
    t = next;
  }
  return sign * t;
}

/** The t of a two-sided 95% interval: tQuantile(0.975, df). */
export function tQuantile95(degreesOfFreedom: number): number {
  return tQuantile(0.975, degreesOfFreedom);
}

export interface Summary {
  n: number;
  mean: number;
  /** undefined with one value */
  sd: number | undefined;
  ci95Low: number | undefined;
  ci95High: number | undefined;
}

/**
 * Mean, sample sd and 95% CI (Student t) of `values`; undefined when there are none. A NaN or ±Infinity
 * is a measurement that went wrong, never dropped in silence: it throws, naming `what` (e.g. the metric).
 */
export function summarize(values: readonly number[], what = 'values'): Summary | undefined {
  const bad = values.findIndex((v) => !Number.isFinite(v));
  if (bad >= 0) throw new XmeError(`${what} has a non-finite value at position ${bad + 1} of ${values.length}: ${values[bad]}`);
  if (values.length === 0) return undefined;
  const m = mean(values as number[]);
  if (values.length < 2) return { n: 1, mean: m, sd: undefined, ci95Low: undefined, ci95High: undefined };
  const sd = sampleStandardDeviation(values as number[]);
  const half = (tQuantile95(values.length - 1) * sd) / Math.sqrt(values.length);
  return { n: values.length, mean: m, sd, ci95Low: m - half, ci95High: m + half };
}
