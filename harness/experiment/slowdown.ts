/**
 * What the guests felt: the slowdown of their workload under each strategy, against the scenario's baseline
 * strategy (usually `none`), from repetitions measured in the same run. Repetitions are paired (same guest
 * count and memory size, same repetition: booted back to back, in rotated order), and the slowdown of each pair is
 *   100 × (1 − ops/s under the strategy / ops/s under the baseline)
 * so that slow drift of a noisy host between repetitions cancels out within a pair. The mean over pairs gets
 * a 95% confidence interval from Student's t (statistics.ts). Positive = the guests ran slower.
 */
import { summarize } from './statistics.ts';
import type { SlowdownRow } from '../results/overhead.ts';
import type { RepetitionMetrics } from '../results/summary.ts';

export const SLOWDOWN_METHOD =
  "per repetition pair (same guest count, memory size and repetition, guests booted for each strategy): 100 × (1 − workload_ops_per_s / baseline's); mean over pairs, 95% CI from Student's t; " +
  'throughput over host time, so time lost to pauses counts';

export function slowdownRows(scenario: string, baseline: string, repetitions: readonly RepetitionMetrics[]): SlowdownRow[] {
  const rows: SlowdownRow[] = [];
  const throughput = (r: RepetitionMetrics) => r.values.workload_ops_per_s;
  const sizes = [...new Map(repetitions.map((r) => [`${r.guests}×${r.memoryMiB}`, { guests: r.guests, memoryMiB: r.memoryMiB }])).values()];
  const strategies = [...new Set(repetitions.map((r) => r.strategy))].filter((s) => s !== baseline);
  for (const { guests, memoryMiB } of sizes) {
    const same = (r: RepetitionMetrics) => r.guests === guests && r.memoryMiB === memoryMiB;
    const base = new Map(repetitions.filter((r) => same(r) && r.strategy === baseline && (throughput(r) ?? 0) > 0).map((r) => [r.repetition, throughput(r)!]));
    for (const strategy of strategies) {
      const pairs = repetitions
        .filter((r) => same(r) && r.strategy === strategy && throughput(r) !== undefined && base.has(r.repetition))
        .map((r) => ({ base: base.get(r.repetition)!, ops: throughput(r)! }));
      const stats = summarize(
        pairs.map((p) => 100 * (1 - p.ops / p.base)),
        `slowdown of ${strategy} vs ${baseline} (${guests} guests × ${memoryMiB} MiB)`,
      );
      if (!stats) continue;
      const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
      rows.push({
        scenario,
        guests,
        memory_mib: memoryMiB,
        strategy,
        baseline,
        n: stats.n,
        baseline_ops_per_s: mean(pairs.map((p) => p.base)),
        ops_per_s: mean(pairs.map((p) => p.ops)),
        slowdown_pct: stats.mean,
        sd: stats.sd,
        ci95_low: stats.ci95Low,
        ci95_high: stats.ci95High,
        method: SLOWDOWN_METHOD,
      });
    }
  }
  return rows;
}
