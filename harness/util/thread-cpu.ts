/**
 * CPU time of the calling thread only, in nanoseconds (clock_gettime(CLOCK_THREAD_CPUTIME_ID) through koffi).
 *
 * Why not process.cpuUsage(): it adds up every thread of the process — V8's concurrent GC markers and
 * compiler threads, libuv's pool — so work (and garbage) of one strategy is billed to whichever strategy
 * happens to run next. A scan runs on the thread that calls it; measuring that thread bills each strategy
 * for its own instructions and for the GC pauses it causes on that thread, not for background threads.
 * (Strategies that use worker threads must add their workers' own thread CPU.)
 */
import koffi from 'koffi';

export const THREAD_CPU_METHOD = 'clock_gettime(CLOCK_THREAD_CPUTIME_ID) of the thread that ran the work (user+sys; other threads of the harness not counted)';

const CLOCK_THREAD_CPUTIME_ID = 3;

type ClockGettime = (clock: number, out: BigInt64Array) => number;
let clockGettime: ClockGettime | undefined;
const timespec = new BigInt64Array(2);

function load(): ClockGettime {
  if (clockGettime) return clockGettime;
  const lib = koffi.load('libc.so.6');
  // struct timespec { time_t tv_sec; long tv_nsec; } is two int64 on x86-64 Linux.
  clockGettime = lib.func('int clock_gettime(int clock, _Out_ int64_t *ts)') as ClockGettime;
  return clockGettime;
}

/** CPU nanoseconds this thread has used since it started. */
export function threadCpuNs(): bigint {
  if (load()(CLOCK_THREAD_CPUTIME_ID, timespec) !== 0) throw new Error('clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed');
  return timespec[0]! * 1_000_000_000n + timespec[1]!;
}

/** Milliseconds of this thread's CPU used by `work` (awaited; only this thread is counted). */
export async function measureThreadCpu<T>(work: () => Promise<T> | T): Promise<{ value: T; cpuMs: number; wallMs: number }> {
  const wall = performance.now();
  const before = threadCpuNs();
  const value = await work();
  const cpuMs = Number(threadCpuNs() - before) / 1e6;
  return { value, cpuMs, wallMs: performance.now() - wall };
}
