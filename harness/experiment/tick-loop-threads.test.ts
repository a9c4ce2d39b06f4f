/**
 * A scan that also ran on worker threads (content's pass, harness/hashing/parallel-scan.ts) is billed their CPU:
 * the tick loop adds ScanResult.threads.workerCpuMs, which the harness thread's clock cannot see, to the scan's,
 * the tick's and the mechanism's CPU. A stand-in strategy reports a known worker CPU far above anything the
 * harness thread spends here, so a loop that forgot it would show less.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { FakeBackend, fakeImage } from '../testing/fake-backend.ts';
import { fakeRepetitionInput } from '../testing/fake-repetition.ts';
import { parseScenario } from '../scenario/scenario.ts';
import type { StrategySample, TickSample } from '../results/tick-sample.ts';
import type { Strategy } from '../../strategies/types.ts';
import { runRepetition } from './tick-loop.ts';

const WORKER_CPU_MS = 5_000;

vi.mock('../../strategies/registry.ts', async (original) => ({
  ...(await original<typeof import('../../strategies/registry.ts')>()),
  createStrategy: (): Strategy => ({
    name: 'threaded',
    declaredMetrics: {},
    describe: () => 'a stand-in whose scan ran on 2 threads',
    scan: async () => ({
      groups: [],
      cost: { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 },
      metrics: {},
      notes: [],
      threads: { count: 2, workerCpuMs: WORKER_CPU_MS },
    }),
  }),
}));

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

describe('tick loop: a scan on worker threads', () => {
  it('adds the workers’ CPU to scan, tick and mechanism CPU, tick by tick', async () => {
    const scenario = parseScenario({
      name: 'tick-loop-threads',
      guests: 2,
      memoryMiB: 64,
      durationS: 0.02,
      tickS: 0.01,
      workload: { name: 'memchurn' },
      strategies: ['content'],
    });
    const backend = new FakeBackend({ memoryPages: 4 });
    const guests = await backend.provision(fakeImage(), 2, { memoryMiB: 64, kaslr: false, workload: scenario.workload });
    const samples: TickSample[] = [];
    await runRepetition(
      fakeRepetitionInput({
        scenario,
        backend,
        guests,
        hasher,
        emit: (sample) => samples.push(sample),
      }),
    );
    const totals = samples.filter((s): s is StrategySample => s.scope === 'all');
    expect(totals.length).toBeGreaterThanOrEqual(2);
    for (const { cost } of totals) {
      expect(cost.scanCpuMs).toBeGreaterThanOrEqual(WORKER_CPU_MS);
      expect(cost.scanCpuMs).toBeLessThan(WORKER_CPU_MS + 1_000);
      expect(cost.tickCpuMs).toBeGreaterThanOrEqual(cost.scanCpuMs);
      expect(cost.mechanismCpuMs).toBeGreaterThanOrEqual(WORKER_CPU_MS);
      // Wall time is the harness thread's: the stand-in took none of the 5 s it reports as worker CPU.
      expect(cost.scanWallMs).toBeLessThan(1_000);
    }
  });
});
