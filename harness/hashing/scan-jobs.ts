/**
 * What the harness thread asks a scan thread (scan-worker.ts) to do, and what it answers: one native call of
 * the content pass over a part of the work (scan-engine.ts hashGuestsRange / confirmAt). Every array that the
 * call writes is a view of a SharedArrayBuffer, so the thread writes the harness's own index and nothing is
 * copied back; guest RAM goes as addresses of views the harness holds for the whole job.
 */

export interface HashRangeJob {
  kind: 'hash';
  bases: BigUint64Array;
  pageCounts: Uint32Array;
  flagBytes: Uint8Array;
  flagOffsets: Uint32Array;
  /** This range's own part of the key array (shared): written, then sorted with its part of the scratch. */
  keys: BigUint64Array;
  scratch: BigUint64Array;
  firstGfn: number;
  endGfn: number;
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

export type ScanJob = HashRangeJob | ConfirmRangeJob;

export interface ScanJobDone {
  /** Keys written and sorted (hash) or classes found (confirm). */
  count: number;
  /** The engine's stats: [bytes compared, bytes hashed, pages read]. */
  stats: [number, number, number];
  /** CPU of the scan thread for this job (CLOCK_THREAD_CPUTIME_ID around the native call). */
  cpuNs: number;
}

export type ScanJobReply = ({ ok: true } & ScanJobDone) | { ok: false; error: string };
