/**
 * A scan thread (started by scan-threads.ts): loads the native scan engine (the same cached shared object as
 * the harness thread) and runs the jobs it is sent, one at a time, each timed on its own thread's CPU clock so
 * the harness can bill what the threads did (util/thread-cpu.ts: the harness thread's clock does not see them).
 */
import { parentPort } from 'node:worker_threads';
import { nativeScanEngine } from './native-scan-engine.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';
import { hashClaimedChunks, type ScanJob, type ScanJobReply } from './scan-jobs.ts';
import { canThread } from './parallel-scan.ts';

function run(job: ScanJob): ScanJobReply {
  const { engine, reason } = nativeScanEngine();
  if (!engine || !canThread(engine)) return { ok: false, error: `no native scan engine on the scan thread (${reason ?? 'no range calls'})` };
  const stats = new Float64Array(3);
  const before = threadCpuNs();
  let count: number;
  if (job.kind === 'hash') count = hashClaimedChunks(engine, job, stats);
  else if (job.kind === 'sort') {
    engine.sortKeys(job.keys, job.n, job.scratch);
    count = job.n;
  } else count = engine.confirmAt(job.keys, job.n, job.bases, { bytes: job.flagBytes, offsets: job.flagOffsets }, job.bounds, job.scratch, stats);
  return { ok: true, count, stats: [stats[0]!, stats[1]!, stats[2]!], cpuNs: Number(threadCpuNs() - before) };
}

const port = parentPort;
if (!port) throw new Error('scan-worker.ts runs only as a worker thread (harness/hashing/scan-threads.ts)');
port.on('message', (job: ScanJob) => {
  let reply: ScanJobReply;
  try {
    reply = run(job);
  } catch (error) {
    reply = { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply);
});
