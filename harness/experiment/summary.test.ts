import { describe, expect, it } from 'vitest';
import { XmeError } from '../util/errors.ts';
import { METRICS } from '../results/metrics.ts';
import { NonFiniteMetricError, summaryRows } from './summary.ts';
import type { RepetitionMetrics } from '../results/summary.ts';

const scenario = { name: 'sweep' };

function rep(memoryMiB: number, strategy: string, repetition: number, values: RepetitionMetrics['values']): RepetitionMetrics {
  return { guests: 3, memoryMiB, strategy, repetition, values };
}

describe('summary rows', () => {
  it('gives one row per memory size × strategy × measured metric, in the order first seen', () => {
    const rows = summaryRows(scenario, [
      rep(128, 'semantic', 1, { shared_pages: 10, scan_cpu_ms: 1 }),
      rep(128, 'content', 1, { shared_pages: 100 }),
      rep(256, 'semantic', 1, { shared_pages: 20 }),
      rep(128, 'semantic', 2, { shared_pages: 12, scan_cpu_ms: 3 }),
      rep(256, 'semantic', 2, { shared_pages: 22 }),
    ]);
    expect(rows.map((r) => [r.memory_mib, r.strategy, r.metric, r.n])).toEqual([
      [128, 'semantic', 'shared_pages', 2],
      [128, 'semantic', 'scan_cpu_ms', 2],
      [128, 'content', 'shared_pages', 1],
      [256, 'semantic', 'shared_pages', 2],
    ]);
    expect(rows.every((r) => r.scenario === 'sweep')).toBe(true);
    expect(rows.find((r) => r.memory_mib === 256)!.mean).toBe(21);
  });

  it('gives n, mean, sample sd and the Student t 95% CI', () => {
    const rows = summaryRows(
      scenario,
      [1, 2, 3, 4].map((v, i) => rep(256, 'semantic', i + 1, { scan_cpu_ms: v })),
    );
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    // mean 2.5; sd = √(5/3) = 1.290994; half-width = t(0.975, 3) · sd / √4 = 3.182446 · 1.290994 / 2 = 2.054260
    expect(row).toMatchObject({ memory_mib: 256, strategy: 'semantic', metric: 'scan_cpu_ms', n: 4, mean: 2.5 });
    expect(row.sd).toBeCloseTo(1.290994, 6);
    expect(row.ci95_low).toBeCloseTo(2.5 - 2.05426, 5);
    expect(row.ci95_high).toBeCloseTo(2.5 + 2.05426, 5);

    // two values: t(0.975, 1) = 12.706205; sd = 7.071068; half-width = 12.706205 · 7.071068 / √2 = 63.531024
    const [pair] = summaryRows(scenario, [rep(128, 'content', 1, { cow_faults: 10 }), rep(128, 'content', 2, { cow_faults: 20 })]);
    expect(pair!.sd).toBeCloseTo(7.071068, 6);
    expect(pair!.ci95_low).toBeCloseTo(15 - 63.531024, 5);
    expect(pair!.ci95_high).toBeCloseTo(15 + 63.531024, 5);
  });

  it('has no sd or CI for a single value', () => {
    const [row] = summaryRows(scenario, [rep(256, 'content', 1, { frames_saved_pct: 88.4 })]);
    expect(row).toMatchObject({ n: 1, mean: 88.4, sd: undefined, ci95_low: undefined, ci95_high: undefined });
  });

  it('counts only the repetitions that measured a metric, and has no row for one never measured', () => {
    const rows = summaryRows(scenario, [
      rep(256, 'semantic', 1, { shared_pages: 5, workload_ops_per_s: 100 }),
      rep(256, 'semantic', 2, { shared_pages: 7, workload_ops_per_s: undefined }),
      rep(256, 'semantic', 3, { shared_pages: 9 }),
    ]);
    expect(rows.find((r) => r.metric === 'shared_pages')).toMatchObject({ n: 3, mean: 7 });
    expect(rows.find((r) => r.metric === 'workload_ops_per_s')).toMatchObject({ n: 1, mean: 100 });
    expect(rows.find((r) => r.metric === 'cow_faults')).toBeUndefined();
  });

  it('refuses NaN and ±Infinity, naming the metric, strategy, memory size and repetition', () => {
    const reps = [rep(256, 'semantic', 1, { shared_pages: 5, scan_cpu_ms: 2 }), rep(256, 'semantic', 2, { shared_pages: 6, scan_cpu_ms: Number.NaN })];
    expect(() => summaryRows(scenario, reps)).toThrow("metric 'scan_cpu_ms' (semantic, 256 MiB) has a non-finite value in repetition 2: NaN");
    const error = (() => {
      try {
        summaryRows(scenario, reps);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(XmeError);
    expect(error).toBeInstanceOf(NonFiniteMetricError);
    expect(error).toMatchObject({ metric: 'scan_cpu_ms', strategy: 'semantic', memoryMiB: 256, repetition: 2 });

    expect(() => summaryRows(scenario, [rep(128, 'content', 3, { scan_cpu_ratio_vs_semantic: Number.POSITIVE_INFINITY })])).toThrow(
      "metric 'scan_cpu_ratio_vs_semantic' (content, 128 MiB) has a non-finite value in repetition 3: Infinity",
    );
    expect(() => summaryRows(scenario, [rep(128, 'content', 1, { cow_faults_per_min: Number.NEGATIVE_INFINITY })])).toThrow(/: -Infinity$/);
  });

  it('carries each metric’s unit and method', () => {
    const rows = summaryRows(scenario, [rep(256, 'semantic', 1, { scan_cpu_ms: 15.2, frames_saved_pct: 3.6 })]);
    expect(rows.map((r) => [r.metric, r.unit, r.method])).toEqual([
      ['frames_saved_pct', METRICS.frames_saved_pct.unit, METRICS.frames_saved_pct.method],
      ['scan_cpu_ms', METRICS.scan_cpu_ms.unit, METRICS.scan_cpu_ms.method],
    ]);
    expect(rows.find((r) => r.metric === 'frames_saved_pct')!.unit).toBe('% of guest memory');
    for (const row of rows) expect(row.method?.length).toBeGreaterThan(10);
  });

  it('takes a metric’s method from the repetitions where they give their own', () => {
    const rows = summaryRows(scenario, [
      { ...rep(256, 'content', 1, { cow_faults: 3, shared_pages: 9 }), methods: { cow_faults: 'hypervisor shr_pages' } },
      { ...rep(256, 'content', 2, { cow_faults: 5, shared_pages: 9 }), methods: { cow_faults: 'hypervisor shr_pages' } },
      { ...rep(512, 'content', 1, { cow_faults: 1 }), methods: { cow_faults: 'a' } },
      { ...rep(512, 'content', 2, { cow_faults: 1 }), methods: { cow_faults: 'b' } },
    ]);
    expect(rows.find((r) => r.memory_mib === 256 && r.metric === 'cow_faults')!.method).toBe('hypervisor shr_pages');
    expect(rows.find((r) => r.memory_mib === 256 && r.metric === 'shared_pages')!.method).toBe(METRICS.shared_pages.method);
    expect(rows.find((r) => r.memory_mib === 512 && r.metric === 'cow_faults')!.method).toBe('a | b');
  });

  it('is empty without repetitions', () => {
    expect(summaryRows(scenario, [])).toEqual([]);
  });
});

describe('summary rows of declared figures', () => {
  const declared = (value: number, method = 'distinct page hashes') => ({ distinct_hashes: { value, unit: 'hashes', method } });

  it('follow the runner’s own metrics, with the unit and method the strategy declared', () => {
    const rows = summaryRows(scenario, [
      { ...rep(128, 'content', 1, { shared_pages: 10 }), declared: declared(4) },
      { ...rep(128, 'content', 2, { shared_pages: 12 }), declared: declared(6) },
    ]);
    expect(rows.map((r) => [r.metric, r.unit, r.n, r.mean, r.method])).toEqual([
      ['shared_pages', 'pages', 2, 11, METRICS.shared_pages.method],
      ['distinct_hashes', 'hashes', 2, 5, 'distinct page hashes'],
    ]);
  });

  it('count only the repetitions that reported them, and join differing methods', () => {
    const rows = summaryRows(scenario, [
      { ...rep(128, 'semantic', 1, {}), declared: { hypercalls_total: { value: 10, unit: 'hypercalls', method: 'a' } } },
      rep(128, 'semantic', 2, {}),
      { ...rep(128, 'semantic', 3, {}), declared: { hypercalls_total: { value: 20, unit: 'hypercalls', method: 'b' } } },
    ]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ metric: 'hypercalls_total', n: 2, mean: 15, method: 'a | b' });
  });

  it('refuse a non-finite value, naming the figure', () => {
    expect(() => summaryRows(scenario, [{ ...rep(64, 'content', 2, {}), declared: declared(Number.NaN) }])).toThrow(
      /metric 'distinct_hashes' \(content, 64 MiB\) has a non-finite value in repetition 2: NaN/,
    );
  });
});
