/**
 * Thread CPU on real threads. Fixed amounts of work, not fixed times: a loaded machine deschedules threads, but
 * the CPU a piece of work needs stays the same, so these hold on a busy CI host too.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { measureThreadCpu, threadCpuNs } from './thread-cpu.ts';

function work(iterations: number): number {
  let x = 0;
  for (let i = 0; i < iterations; i++) x += Math.sqrt(x + i);
  return x;
}

describe('thread CPU', () => {
  it('grows with this thread’s own work: twice the work, about twice the CPU', async () => {
    work(2e6); // warm up the JIT so both measurements run the same code
    const once = await measureThreadCpu(() => work(2e7));
    const twice = await measureThreadCpu(() => work(4e7));
    expect(once.cpuMs).toBeGreaterThan(0);
    expect(once.cpuMs).toBeLessThanOrEqual(once.wallMs + 5);
    expect(twice.cpuMs / once.cpuMs).toBeGreaterThan(1.4);
    expect(twice.cpuMs / once.cpuMs).toBeLessThan(2.8);
  });

  it('does not count another thread’s work done meanwhile', async () => {
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads');
       let x = 0; for (let i = 0; i < 8e7; i++) x += Math.sqrt(x + i);
       parentPort.postMessage(x);`,
      { eval: true },
    );
    const processBefore = process.cpuUsage();
    const threadBefore = threadCpuNs();
    await new Promise((resolve) => worker.once('message', resolve)); // the main thread waits in the event loop
    const threadMs = Number(threadCpuNs() - threadBefore) / 1e6;
    const processUsage = process.cpuUsage(processBefore);
    const processMs = (processUsage.user + processUsage.system) / 1000;
    await worker.terminate();
    // process.cpuUsage saw the worker's loop; this thread's clock saw only the waiting.
    expect(processMs).toBeGreaterThan(threadMs * 3);
  });
});
