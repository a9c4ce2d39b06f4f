/**
 * The content pass on 1 and 2 threads, side by side on the same paused guests: passes alternate (1, 2, 1, 2, …)
 * so that both see the same disturbance of a shared machine, and the ratio of their medians is the figure.
 * Wall time is the pass's; CPU is summed over the threads that worked (the harness thread's clock + each scan
 * thread's own, harness/hashing/parallel-scan.ts), so the mechanism's CPU stays honest when the wall shrinks.
 */
import os from 'node:os';
import type { Guest } from '../harness/backends/types.ts';
import { ContentStrategy } from '../strategies/content.ts';
import type { StrategyContext } from '../strategies/types.ts';
import { threadCpuNs } from '../harness/util/thread-cpu.ts';
import { median } from './measure.ts';

export interface ThreadedPass {
  threads: number;
  wallMsMedian: number;
  /** Harness thread + scan threads. */
  cpuMsMedian: number;
  workerCpuMsMedian: number;
  groups: number;
}

export async function threadedPasses(
  guests: readonly Guest[],
  context: Omit<StrategyContext, 'residency'>,
  times: number,
  threadCounts: readonly number[] = [1, 2],
): Promise<{ passes: ThreadedPass[]; load: number[] }> {
  await Promise.all(guests.map((g) => g.pause()));
  const residency = guests.map((g) => g.hostResidency?.residentPages());
  const strategies = threadCounts.map((threads) => new ContentStrategy({ zeroPages: true, scanThreads: threads }));
  const runs = threadCounts.map(() => ({ wall: [] as number[], cpu: [] as number[], workers: [] as number[], groups: 0 }));
  for (const strategy of strategies) await strategy.scan({ ...context, residency }); // warm: index, scan threads started
  for (let i = 0; i < times; i++) {
    for (const [s, strategy] of strategies.entries()) {
      const wall = performance.now();
      const cpu = threadCpuNs();
      const result = await strategy.scan({ ...context, residency });
      const harnessMs = Number(threadCpuNs() - cpu) / 1e6;
      const run = runs[s]!;
      run.wall.push(performance.now() - wall);
      run.workers.push(result.threads?.workerCpuMs ?? 0);
      run.cpu.push(harnessMs + (result.threads?.workerCpuMs ?? 0));
      run.groups = result.groups.length;
    }
  }
  return {
    passes: runs.map((run, s) => ({
      threads: threadCounts[s]!,
      wallMsMedian: median(run.wall),
      cpuMsMedian: median(run.cpu),
      workerCpuMsMedian: median(run.workers),
      groups: run.groups,
    })),
    load: os.loadavg(),
  };
}
