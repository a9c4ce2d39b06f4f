/**
 * summary.csv: per scenario × memory size × strategy × metric, mean / sd / 95% CI over repetitions, with the
 * metric's unit and how it was measured (experiment/summary.ts computes the rows from RepetitionMetrics).
 */
import { XmeError } from '../util/errors.ts';
import type { MetricName } from './metrics.ts';
import type { MetricDefinition } from '../sharing/types.ts';
import { headerNumber, numberColumn, readCsv, requiredNumber, requiredText, textColumn, type RowOf } from './csv.ts';
import { RESULTS_HINT } from './samples.ts';

/** What one repetition of one strategy measured: the input of summary.csv, overhead.csv and a suite's merge. */
export interface RepetitionMetrics {
  /** Guests scored together (a scenario may sweep the count). */
  guests: number;
  memoryMiB: number;
  repetition: number;
  strategy: string;
  /** A metric not measured in this repetition is left out (undefined); NaN and ±Infinity are refused. */
  values: Partial<Record<MetricName, number>>;
  /** How a metric was measured in this repetition, where that differs from METRICS[metric].method. */
  methods?: Partial<Record<MetricName, string>>;
  /**
   * Figures the strategy or its ledger declared (Strategy/Ledger.declaredMetrics), e.g. distinct_hashes or
   * hypercalls_total, with the unit and method they declared: summarised after the runner's own metrics.
   */
  declared?: Record<string, DeclaredValue>;
}

export interface DeclaredValue extends MetricDefinition {
  value: number;
}

export const SUMMARY_SCHEMA = {
  scenario: requiredText,
  /** Guests scored together (absent in files written before the column existed). */
  guests: numberColumn,
  memory_mib: requiredNumber,
  strategy: requiredText,
  /** One of METRICS, or a figure a strategy or ledger declared. */
  metric: requiredText,
  unit: requiredText,
  /** Repetitions that measured the metric. */
  n: requiredNumber,
  mean: requiredNumber,
  /** Empty with n = 1. */
  sd: headerNumber,
  ci95_low: headerNumber,
  ci95_high: headerNumber,
  /** How the metric was measured (absent in files written before the column existed). */
  method: textColumn,
} as const;

export type SummaryColumn = keyof typeof SUMMARY_SCHEMA;
export const SUMMARY_COLUMNS = Object.keys(SUMMARY_SCHEMA) as SummaryColumn[];
export type SummaryRow = RowOf<typeof SUMMARY_SCHEMA>;

/** Parses a summary.csv (by column name); a file that is not one is an XmeError naming it. */
export function readSummary(file: string): SummaryRow[] {
  const rows = readCsv(file, SUMMARY_SCHEMA, { kind: 'a summary.csv', hint: RESULTS_HINT });
  rows.forEach((row, i) => {
    if (!Number.isInteger(row.n) || row.n < 1) throw new XmeError(`${file} line ${i + 2}: n must be a whole number ≥ 1, got ${row.n}`);
  });
  return rows;
}
