import { describe, expect, it } from 'vitest';
import { slowdownRows } from './slowdown.ts';
import type { RepetitionMetrics } from '../results/summary.ts';

const rep = (strategy: string, repetition: number, ops: number | undefined, memoryMiB = 256): RepetitionMetrics => ({
  guests: 3,
  memoryMiB,
  repetition,
  strategy,
  values: ops === undefined ? {} : { workload_ops_per_s: ops },
});

describe('guest slowdown against a baseline', () => {
  it('pairs repetitions, so that drift between repetitions cancels, and gives a t-based 95% CI', () => {
    // The host gets slower over time (1000 → 800 ops/s), KSM always costs 10 %: every pair says 10 %.
    const reps = [rep('none', 1, 1000), rep('ksm', 1, 900), rep('none', 2, 900), rep('ksm', 2, 810), rep('none', 3, 800), rep('ksm', 3, 720)];
    const [row] = slowdownRows('s', 'none', reps);
    expect(row).toMatchObject({ strategy: 'ksm', baseline: 'none', n: 3, memory_mib: 256 });
    expect(row!.slowdown_pct).toBeCloseTo(10, 9);
    expect(row!.sd).toBeCloseTo(0, 9);
    expect(row!.ci95_low).toBeCloseTo(10, 9);
    expect(row!.baseline_ops_per_s).toBeCloseTo(900, 9);
  });

  it('computes the CI from the pairs: t(0.975, df 2) = 4.303', () => {
    const reps = [rep('none', 1, 100), rep('ksm', 1, 90), rep('none', 2, 100), rep('ksm', 2, 80), rep('none', 3, 100), rep('ksm', 3, 70)];
    const [row] = slowdownRows('s', 'none', reps);
    expect(row!.slowdown_pct).toBeCloseTo(20, 9); // pairs: 10, 20, 30
    expect(row!.sd).toBeCloseTo(10, 9);
    expect(row!.ci95_high! - row!.slowdown_pct).toBeCloseTo((4.302652729749464 * 10) / Math.sqrt(3), 6);
  });

  it('leaves out a repetition with no throughput on either side, and reports a speed-up as negative', () => {
    const reps = [rep('none', 1, 100), rep('ksm', 1, 110), rep('none', 2, undefined), rep('ksm', 2, 50), rep('ksm', 3, 50)];
    const [row] = slowdownRows('s', 'none', reps);
    expect(row!.n).toBe(1);
    expect(row!.slowdown_pct).toBeCloseTo(-10, 9);
    expect(row!.ci95_low).toBeUndefined();
  });

  it('keeps memory sizes apart and says nothing without a baseline measurement', () => {
    const reps = [rep('none', 1, 100, 128), rep('ksm', 1, 50, 256)];
    expect(slowdownRows('s', 'none', reps)).toEqual([]);
  });
});
