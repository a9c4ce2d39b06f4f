/** summary.csv: per scenario × memory size × strategy × metric, mean / sd / 95% CI over repetitions. */
import type { Scenario } from './scenario.ts';
import { METRICS, type MetricName } from './metrics.ts';
import { summarize } from './statistics.ts';
import { XmeError } from '../util/errors.ts';

export interface RepetitionMetrics {
  memoryMiB: number;
  repetition: number;
  strategy: string;
  /** A metric not measured in this repetition is left out (undefined); NaN and ±Infinity are refused. */
  values: Partial<Record<MetricName, number>>;
  /** How a metric was measured in this repetition, where that differs from METRICS[metric].method. */
  methods?: Partial<Record<MetricName, string>>;
}

export interface SummaryRow {
  scenario: string;
  memory_mib: number;
  strategy: string;
  metric: MetricName;
  unit: string;
  n: number;
  mean: number;
  sd: number | undefined;
  ci95_low: number | undefined;
  ci95_high: number | undefined;
  method: string;
}

/** A metric came out NaN or ±Infinity in a repetition: a measurement went wrong, so no summary is made up. */
export class NonFiniteMetricError extends XmeError {
  constructor(
    readonly metric: MetricName,
    readonly strategy: string,
    readonly memoryMiB: number,
    readonly repetition: number,
    readonly value: number,
  ) {
    super(
      `metric '${metric}' (${strategy}, ${memoryMiB} MiB) has a non-finite value in repetition ${repetition}: ${value}`,
      'samples.csv has the raw samples; a metric a repetition cannot measure should be left out, not NaN (a bug in xme)',
    );
    this.name = 'NonFiniteMetricError';
  }
}

/**
 * One row per memory size × strategy × metric (in the order first seen, metrics in METRICS order) over the
 * repetitions that measured it: a metric left undefined in a repetition is absent from its n. A NaN or
 * ±Infinity throws NonFiniteMetricError rather than being dropped.
 */
export function summaryRows(scenario: Pick<Scenario, 'name'>, repetitions: readonly RepetitionMetrics[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const keys = [...new Set(repetitions.map((r) => `${r.memoryMiB}\u0000${r.strategy}`))];
  for (const key of keys) {
    const [memory, strategy] = key.split('\u0000') as [string, string];
    const group = repetitions.filter((r) => r.memoryMiB === Number(memory) && r.strategy === strategy);
    for (const metric of Object.keys(METRICS) as MetricName[]) {
      const measured = group.filter((r) => r.values[metric] !== undefined);
      const bad = measured.find((r) => !Number.isFinite(r.values[metric]));
      if (bad) throw new NonFiniteMetricError(metric, strategy, bad.memoryMiB, bad.repetition, bad.values[metric]!);
      const stats = summarize(measured.map((r) => r.values[metric]!), `metric '${metric}' (${strategy}, ${memory} MiB)`);
      if (!stats) continue;
      rows.push({
        scenario: scenario.name,
        memory_mib: Number(memory),
        strategy,
        metric,
        unit: METRICS[metric].unit,
        n: stats.n,
        mean: stats.mean,
        sd: stats.sd,
        ci95_low: stats.ci95Low,
        ci95_high: stats.ci95High,
        method: methodOf(metric, measured),
      });
    }
  }
  return rows;
}

/** The method column: the repetitions' own description of the metric (all distinct ones, joined), else METRICS'. */
function methodOf(metric: MetricName, measured: readonly RepetitionMetrics[]): string {
  const own = [...new Set(measured.map((r) => r.methods?.[metric]).filter((m): m is string => m !== undefined))];
  return own.length > 0 ? own.join(' | ') : METRICS[metric].method;
}
