/**
 * What the harness thread asks a scan thread (scan-worker.ts) to do, and what it answers: native calls of the
 * content pass over a part of the work (scan-engine.ts hashGuestsRange, sortKeys, confirmAt). Every array that the
 * call writes is a view of a SharedArrayBuffer, so the thread writes the harness's own index and nothing is
 * copied back; guest RAM goes as addresses of views the harness holds for the whole job.
 */
import type { ScanEngine } from './scan-engine.ts';

/**
 * The hash pass in chunks of whole windows, claimed one at a time by every thread that works (an atomic
 * counter): a thread the host leaves waiting simply claims fewer, so the pass ends when the work is done, not
 * when the slowest thread's fixed share is (on a host shared with guests, a thread's share of a core varies).
 * Chunk c covers gfns [cuts[c], cuts[c + 1]) of every guest and writes its keys from keys[offsets[c]].
 */
export interface HashChunksJob {
  kind: 'hash';
  bases: BigUint64Array;
  pageCounts: Uint32Array;
  flagBytes: Uint8Array;
  flagOffsets: Uint32Array;
  /** The whole key array (shared). */
  keys: BigUint64Array;
  cuts: Uint32Array;
  offsets: Uint32Array;
  /** [0]: the next chunk to claim (shared). */
  claims: Int32Array;
  /** Keys each chunk wrote (shared). */
  counts: Uint32Array;
}

/** Sort keys[0, n) of this part (shared), with its part of the scratch. */
export interface SortJob {
  kind: 'sort';
  keys: BigUint64Array;
  scratch: BigUint64Array;
  n: number;
}

export interface ConfirmRangeJob {
  kind: 'confirm';
  bases: BigUint64Array;
  flagBytes: Uint8Array;
  flagOffsets: Uint32Array;
  /** keys, bounds and scratch from this part's first key on (shared). */
  keys: BigUint64Array;
  n: number;
  bounds: Uint32Array;
  scratch: BigUint64Array;
}

export type ScanJob = HashChunksJob | SortJob | ConfirmRangeJob;

export interface ScanJobDone {
  /** Chunks hashed (hash), keys sorted (sort) or classes found (confirm). */
  count: number;
  /** The engine's stats: [bytes compared, bytes hashed, pages read]. */
  stats: [number, number, number];
  /** CPU of the scan thread for this job (CLOCK_THREAD_CPUTIME_ID around the native call). */
  cpuNs: number;
}

export type ScanJobReply = ({ ok: true } & ScanJobDone) | { ok: false; error: string };

/** Claim chunks until none is left, hashing each (the harness thread and every scan thread run this). Returns how many it did. */
export function hashClaimedChunks(engine: Required<Pick<ScanEngine, 'hashGuestsRange'>>, job: HashChunksJob, stats: Float64Array): number {
  const flags = { bytes: job.flagBytes, offsets: job.flagOffsets };
  const chunks = job.cuts.length - 1;
  let done = 0;
  for (let chunk = Atomics.add(job.claims, 0, 1); chunk < chunks; chunk = Atomics.add(job.claims, 0, 1)) {
    const keys = job.keys.subarray(job.offsets[chunk]!, job.offsets[chunk + 1]!);
    job.counts[chunk] = engine.hashGuestsRange(job.bases, job.pageCounts, flags, keys, stats, job.cuts[chunk]!, job.cuts[chunk + 1]!);
    done++;
  }
  return done;
}
