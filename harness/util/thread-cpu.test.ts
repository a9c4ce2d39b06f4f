import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { measureThreadCpu, threadCpuNs } from './thread-cpu.ts';

function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) x += Math.sqrt(x + 1);
  return x;
}

describe('thread CPU', () => {
  it('counts this thread’s own busy work', async () => {
    const { cpuMs, wallMs } = await measureThreadCpu(() => spin(150));
    expect(wallMs).toBeGreaterThanOrEqual(150);
    // On a loaded machine the thread may be descheduled, so CPU ≤ wall; it must still be most of it.
    expect(cpuMs).toBeGreaterThan(60);
    expect(cpuMs).toBeLessThanOrEqual(wallMs + 5);
  });

  it('does not count another thread busy at the same time (process.cpuUsage does)', async () => {
    const worker = new Worker(
      'const end = Date.now() + 400; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); require("node:worker_threads").parentPort.postMessage(x);',
      { eval: true },
    );
    const done = new Promise((resolve) => worker.once('message', resolve));
    const processBefore = process.cpuUsage();
    const threadBefore = threadCpuNs();
    await done; // the main thread sleeps in the event loop while the worker spins
    const threadMs = Number(threadCpuNs() - threadBefore) / 1e6;
    const processUsage = process.cpuUsage(processBefore);
    const processMs = (processUsage.user + processUsage.system) / 1000;
    await worker.terminate();
    expect(processMs).toBeGreaterThan(150);
    expect(threadMs).toBeLessThan(processMs / 3);
  });
});
