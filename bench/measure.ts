/** Thread-CPU and wall time of repeated calls; the best and the median (a shared machine disturbs some). */
import { threadCpuNs } from '../harness/util/thread-cpu.ts';

export interface Timing {
  cpuMs: number[];
  wallMs: number[];
}

export async function timeRepeated(times: number, work: () => Promise<unknown> | unknown): Promise<Timing> {
  const cpuMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 0; i < times; i++) {
    const wall = performance.now();
    const cpu = threadCpuNs();
    await work();
    cpuMs.push(Number(threadCpuNs() - cpu) / 1e6);
    wallMs.push(performance.now() - wall);
  }
  return { cpuMs, wallMs };
}

export const best = (values: number[]): number => Math.min(...values);
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
