/** overhead.csv: the guests' workload slowdown under each strategy against the scenario's baseline (experiment/slowdown.ts computes it). */
import { headerNumber, numberColumn, requiredNumber, requiredText, type RowOf } from './csv.ts';

export const SLOWDOWN_SCHEMA = {
  scenario: requiredText,
  /** Guests per set (absent in files written before the column existed). */
  guests: numberColumn,
  memory_mib: requiredNumber,
  strategy: requiredText,
  baseline: requiredText,
  /** Pairs of repetitions with a throughput under both. */
  n: requiredNumber,
  baseline_ops_per_s: requiredNumber,
  ops_per_s: requiredNumber,
  slowdown_pct: requiredNumber,
  sd: headerNumber,
  ci95_low: headerNumber,
  ci95_high: headerNumber,
  method: requiredText,
} as const;

export const SLOWDOWN_COLUMNS = Object.keys(SLOWDOWN_SCHEMA) as (keyof typeof SLOWDOWN_SCHEMA)[];
export type SlowdownRow = RowOf<typeof SLOWDOWN_SCHEMA>;
