/** summary.csv: per scenario × memory size × strategy × metric, mean / sd / 95% CI over repetitions. */
import type { Scenario } from './scenario.ts';
import { METRICS, type MetricName } from './metrics.ts';
import { summarize } from './statistics.ts';

export interface RepetitionMetrics {
  memoryMiB: number;
  repetition: number;
  strategy: string;
  values: Partial<Record<MetricName, number>>;
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

export function summaryRows(scenario: Scenario, repetitions: RepetitionMetrics[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const keys = [...new Set(repetitions.map((r) => `${r.memoryMiB}\u0000${r.strategy}`))];
  for (const key of keys) {
    const [memory, strategy] = key.split('\u0000') as [string, string];
    const group = repetitions.filter((r) => r.memoryMiB === Number(memory) && r.strategy === strategy);
    for (const metric of Object.keys(METRICS) as MetricName[]) {
      const stats = summarize(group.map((r) => r.values[metric]).filter((v): v is number => v !== undefined));
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
        method: METRICS[metric].method,
      });
    }
  }
  return rows;
}
