/** summary.csv: per scenario × guest count × memory size × strategy × metric, mean / sd / 95% CI over repetitions. */
import type { Scenario } from '../scenario/scenario.ts';
import { METRICS, type MetricName } from '../results/metrics.ts';
import type { DeclaredValue, RepetitionMetrics, SummaryRow } from '../results/summary.ts';
import { summarize } from './statistics.ts';
import { XmeError } from '../util/errors.ts';

/** A metric came out NaN or ±Infinity in a repetition: a measurement went wrong, so no summary is made up. */
export class NonFiniteMetricError extends XmeError {
  constructor(
    readonly metric: string,
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
 * One row per guest count × memory size × strategy × metric (in the order first seen; METRICS in their order, then the
 * declared figures in the order first seen) over the repetitions that measured it: a metric left undefined
 * in a repetition is absent from its n. A NaN or ±Infinity throws NonFiniteMetricError rather than being dropped.
 */
export function summaryRows(scenario: Pick<Scenario, 'name'>, repetitions: readonly RepetitionMetrics[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const keys = [...new Set(repetitions.map((r) => `${r.guests}\u0000${r.memoryMiB}\u0000${r.strategy}`))];
  for (const key of keys) {
    const [guests, memory, strategy] = key.split('\u0000') as [string, string, string];
    const group = repetitions.filter((r) => r.guests === Number(guests) && r.memoryMiB === Number(memory) && r.strategy === strategy);
    const row = (metric: string, measured: { repetition: RepetitionMetrics; value: number }[], unit: string, method: string) => {
      const bad = measured.find((m) => !Number.isFinite(m.value));
      if (bad) throw new NonFiniteMetricError(metric, strategy, bad.repetition.memoryMiB, bad.repetition.repetition, bad.value);
      const stats = summarize(
        measured.map((m) => m.value),
        `metric '${metric}' (${strategy}, ${guests} guests × ${memory} MiB)`,
      );
      if (!stats) return;
      rows.push({
        scenario: scenario.name,
        guests: Number(guests),
        memory_mib: Number(memory),
        strategy,
        metric,
        unit,
        n: stats.n,
        mean: stats.mean,
        sd: stats.sd,
        ci95_low: stats.ci95Low,
        ci95_high: stats.ci95High,
        method,
      });
    };
    for (const metric of Object.keys(METRICS) as MetricName[]) {
      const measured = group.filter((r) => r.values[metric] !== undefined);
      row(
        metric,
        measured.map((r) => ({ repetition: r, value: r.values[metric]! })),
        METRICS[metric].unit,
        methodOf(metric, measured),
      );
    }
    for (const metric of new Set(group.flatMap((r) => Object.keys(r.declared ?? {})))) {
      const measured = group.flatMap((r) => {
        const declared = r.declared?.[metric];
        return declared ? [{ repetition: r, declared }] : [];
      });
      const distinct = (pick: (d: DeclaredValue) => string) => [...new Set(measured.map((m) => pick(m.declared)))].join(' | ');
      row(
        metric,
        measured.map((m) => ({ repetition: m.repetition, value: m.declared.value })),
        distinct((d) => d.unit),
        distinct((d) => d.method),
      );
    }
  }
  return rows;
}

/** The method column: the repetitions' own description of the metric (all distinct ones, joined), else METRICS'. */
function methodOf(metric: MetricName, measured: readonly RepetitionMetrics[]): string {
  const own = [...new Set(measured.map((r) => r.methods?.[metric]).filter((m): m is string => m !== undefined))];
  return own.length > 0 ? own.join(' | ') : METRICS[metric].method;
}
