/** Mean, standard deviation and 95% confidence interval over repetitions (simple-statistics + Student's t). */
import { mean, sampleStandardDeviation } from 'simple-statistics';

/** Two-sided 95% Student t quantiles for 1–30 degrees of freedom; 1.96 beyond. */
const T95 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11,
  2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function tQuantile95(degreesOfFreedom: number): number {
  return T95[degreesOfFreedom - 1] ?? 1.96;
}

export interface Summary {
  n: number;
  mean: number;
  /** undefined with one value */
  sd: number | undefined;
  ci95Low: number | undefined;
  ci95High: number | undefined;
}

export function summarize(values: number[]): Summary | undefined {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return undefined;
  const m = mean(finite);
  if (finite.length < 2) return { n: 1, mean: m, sd: undefined, ci95Low: undefined, ci95High: undefined };
  const sd = sampleStandardDeviation(finite);
  const half = (tQuantile95(finite.length - 1) * sd) / Math.sqrt(finite.length);
  return { n: finite.length, mean: m, sd, ci95Low: m - half, ci95High: m + half };
}
