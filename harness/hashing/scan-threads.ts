/**
 * The scan threads: worker threads kept for the life of the process (started on first use, ≈ 0.3 s each, which
 * only the first pass pays), each running scan-worker.ts. A thread does one job at a time. Idle threads are
 * unref'd, so they never keep the process alive; a thread that fails is dropped and the next pass starts a new
 * one. How many threads a pass uses: scanThreadCount().
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { ScanJob, ScanJobDone, ScanJobReply } from './scan-jobs.ts';
import { XmeError } from '../util/errors.ts';

/** A thread is worth starting for at least this many gfns of the longest guest (16 MiB): below it the messages cost more than the pages. */
export const MIN_GFNS_PER_THREAD = 4096;
/** Beyond this many threads the pass is memory-bound on any host this runs on. */
const MAX_SCAN_THREADS = 16;

/**
 * Threads for a pass over guests whose longest has `longestPages` pages, the harness thread included: `asked`
 * (a strategy option, the bench's), else XME_SCAN_THREADS, else the host's cores, at most one per
 * MIN_GFNS_PER_THREAD gfns and MAX_SCAN_THREADS. Needs no scenario or command line: the default is the host's.
 */
export function scanThreadCount(longestPages: number, asked?: number): number {
  const env = process.env.XME_SCAN_THREADS;
  const wanted = asked ?? (env ? Number(env) : undefined);
  if (wanted !== undefined) {
    if (!Number.isInteger(wanted) || wanted < 1 || wanted > MAX_SCAN_THREADS)
      throw new XmeError(
        `scan threads: ${asked !== undefined ? 'option scanThreads' : 'XME_SCAN_THREADS'} is ${asked ?? env}`,
        `a whole number from 1 to ${MAX_SCAN_THREADS}; unset, the host's cores are used`,
      );
    return wanted;
  }
  const cores = Math.min(os.availableParallelism(), MAX_SCAN_THREADS);
  return Math.max(1, Math.min(cores, Math.floor(longestPages / MIN_GFNS_PER_THREAD)));
}

class ScanThread {
  private readonly worker: Worker;
  private pending: { resolve: (done: ScanJobDone) => void; reject: (error: Error) => void } | undefined;
  failed = false;

  constructor() {
    // Worker threads do not inherit the tsx loader the harness runs under (bin/xme.js registers it in-process):
    // a two-line bootstrap registers it in the thread, then loads the TypeScript worker.
    const tsx = import.meta.resolve('tsx/esm/api');
    const worker = new URL('./scan-worker.ts', import.meta.url).href;
    this.worker = new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker)}); });`, {
      eval: true,
    });
    this.worker.unref();
    this.worker.on('message', (reply: ScanJobReply) => this.settle(reply.ok ? reply : new Error(`scan thread: ${reply.error}`)));
    this.worker.on('error', (error) => this.fail(error));
    this.worker.on('exit', (code) => this.fail(new Error(`scan thread exited (code ${code})`)));
  }

  run(job: ScanJob): Promise<ScanJobDone> {
    if (this.pending) throw new Error('scan thread: one job at a time');
    this.worker.ref(); // the harness waits for this job: keep the process alive until it ends
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(job);
    });
  }

  private settle(outcome: ScanJobDone | Error): void {
    const pending = this.pending;
    this.pending = undefined;
    this.worker.unref();
    if (!pending) return;
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
  }

  private fail(error: Error): void {
    this.failed = true;
    this.settle(error);
  }
}

const threads: ScanThread[] = [];

/** `count` scan threads, started where missing (failed ones replaced). */
export function scanThreads(count: number): ScanThread[] {
  for (let i = 0; i < threads.length; i++) if (threads[i]!.failed) threads[i] = new ScanThread();
  while (threads.length < count) threads.push(new ScanThread());
  return threads.slice(0, count);
}
