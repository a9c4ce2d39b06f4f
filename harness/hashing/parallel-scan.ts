/**
 * The content pass on several threads (the harness thread and scan threads, scan-threads.ts), with results
 * identical to the one-thread pass, key for key.
 *
 * Why over page ranges and not over guests: the pass reads the guests in lockstep windows of 64 gfns, and
 * guest g's page is first compared with guest g − 1's page at the same gfn (the in-cache pairing that
 * confirms most duplicates of identical guests without a hash). Splitting by guest would cut those pairs
 * (every thread's first guest would have no previous guest), changing the flags, the hashes done and the
 * keys' order. A window never looks at another window, so each thread takes a range of whole windows across
 * all guests (ranges are chunks that threads claim as they get to them: a thread the host keeps waiting does
 * fewer): it writes exactly the flags the one-thread pass writes there, and its keys, which the one thread
 * would have written in window order too, in range order make the same key array. That array is sorted in
 * parts, one per thread (the radix sort is stable), merged with equal hashes in part order: what one stable
 * sort of the whole array gives, without the sort on the harness thread alone (at 64 guests it is millions
 * of keys). Confirmation is then split at boundaries of runs of equal hashes (each run is
 * confirmed alone in the one-thread pass as well), and each part's classes are put end to end in key order:
 * the same classes, in the same order.
 *
 * CPU: each scan thread times its own native call (CLOCK_THREAD_CPUTIME_ID); the harness thread's part is on
 * the harness thread's clock, which the caller measures. workerCpuMs is the scan threads' sum, to be added.
 */
import { SCAN_WINDOW_PAGES, type PageFlags, type ScanEngine } from './scan-engine.ts';
import { hashClaimedChunks, type HashChunksJob, type ScanJobDone } from './scan-jobs.ts';
import { scanThreads } from './scan-threads.ts';

type RangeEngine = Required<Pick<ScanEngine, 'hashGuestsRange' | 'confirmAt' | 'countWindows' | 'mergeSorted' | 'sortKeys'>>;

/** Whether this engine can run the pass on several threads (the native engine). */
export function canThread(engine: ScanEngine): engine is ScanEngine & RangeEngine {
  return engine.hashGuestsRange !== undefined && engine.confirmAt !== undefined && engine.countWindows !== undefined && engine.mergeSorted !== undefined;
}

/**
 * Below this many keys the confirmation stays on the harness thread: it is ≈ 0.5 ms per 70,000 keys of
 * identical guests (most pairs join without a compare), less than a scan thread's message round trip on a
 * busy host. Above, it is split like the hash pass.
 */
export const MIN_KEYS_TO_SPLIT_CONFIRM = 1 << 20;

/** The SharedArrayBuffer-backed arrays a threaded pass writes (content-index.ts allocates them so). */
function requireShared(...arrays: ArrayBufferView[]): void {
  if (arrays.some((a) => !(a.buffer instanceof SharedArrayBuffer))) throw new RangeError('a threaded pass writes only SharedArrayBuffer-backed arrays');
}

export interface ThreadedHash {
  /** Keys written, from keys[0], sorted: as the one-thread pass writes and sorts them. */
  n: number;
  /** Threads that worked, the harness thread included. */
  threads: number;
  /** The scan threads' CPU (the harness thread's own part is not in it). */
  workerCpuMs: number;
}

/**
 * Cut the windows of gfns into `parts` ranges of about equal pages to read (perWindow: ScanEngine.countWindows
 * of the flags on entry, the resident pages of every guest), each starting at a multiple of SCAN_WINDOW_PAGES.
 * Returns parts + 1 gfn boundaries.
 */
export function windowRanges(perWindow: Uint32Array, pageCounts: Uint32Array, parts: number): number[] {
  const longest = Math.max(0, ...pageCounts);
  const windows = perWindow.length;
  let total = 0;
  for (const pages of perWindow) total += pages;
  const cuts = [0];
  let seen = 0;
  let window = 0;
  for (let part = 1; part < parts; part++) {
    const target = (total * part) / parts;
    while (window < windows && seen + perWindow[window]! <= target) seen += perWindow[window++]!;
    cuts.push(Math.max(cuts[cuts.length - 1]!, window * SCAN_WINDOW_PAGES));
  }
  cuts.push(Math.max(longest, cuts[cuts.length - 1]!));
  return cuts;
}

/** Keys a range [first, end) may write at most: its pages in every guest. */
function rangePages(pageCounts: Uint32Array, first: number, end: number): number {
  let pages = 0;
  for (const count of pageCounts) pages += Math.max(0, Math.min(end, count) - Math.min(first, count));
  return pages;
}

/** Settle every job before returning or throwing: a thread must not write an index, or read RAM, after the pass. */
async function finish(jobs: Promise<ScanJobDone>[], own: () => number): Promise<{ own: number; done: ScanJobDone[] }> {
  let ownCount = 0;
  let ownError: unknown;
  try {
    ownCount = own();
  } catch (error) {
    ownError = error;
  }
  const settled = await Promise.allSettled(jobs);
  if (ownError !== undefined) throw ownError;
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed) throw failed.reason;
  return { own: ownCount, done: settled.map((s) => (s as PromiseFulfilledResult<ScanJobDone>).value) };
}

/** Chunks of the hash pass per thread: enough that a thread left waiting by the host costs little, few enough that claiming them costs nothing. */
export const CHUNKS_PER_THREAD = 8;

/**
 * hashGuests then sortKeys on `threads` threads. The windows are cut into chunks of about equal resident pages,
 * claimed by the harness thread and the scan threads as each gets to them (scan-jobs.ts hashClaimedChunks);
 * chunk c's keys go from the first key it could write (the pages of the chunks before it), then are put end to
 * end in chunk order: the one-thread pass's key array. It is then cut into `threads` parts, each sorted by one
 * thread, and the sorted parts merged (equal hashes in part order: a stable sort of the whole). bases: addresses
 * of the guests' views, which the caller holds until this resolves. keys, scratch, flags: SharedArrayBuffer-
 * backed. stats as hashGuests' (summed over the threads).
 */
export async function hashSortThreaded(
  engine: RangeEngine,
  bases: BigUint64Array,
  pageCounts: Uint32Array,
  flags: PageFlags,
  keys: BigUint64Array,
  scratch: BigUint64Array,
  stats: Float64Array,
  threads: number,
): Promise<ThreadedHash> {
  requireShared(keys, scratch, flags.bytes);
  const perWindow = engine.countWindows(flags, pageCounts);
  const cuts = windowRanges(perWindow, pageCounts, Math.max(1, Math.min(perWindow.length, threads * CHUNKS_PER_THREAD)));
  const chunks = cuts.length - 1;
  const job: HashChunksJob = {
    kind: 'hash',
    bases,
    pageCounts,
    flagBytes: flags.bytes,
    flagOffsets: flags.offsets,
    keys,
    cuts: Uint32Array.from(cuts),
    offsets: Uint32Array.from(cuts, (cut) => rangePages(pageCounts, 0, cut)),
    claims: new Int32Array(new SharedArrayBuffer(4)),
    counts: new Uint32Array(new SharedArrayBuffer(4 * chunks)),
  };
  const workers = scanThreads(threads - 1);
  const hashed = await finish(
    workers.map((worker) => worker.run(job)),
    () => hashClaimedChunks(engine, job, stats),
  );
  for (const done of hashed.done) for (let s = 0; s < 3; s++) stats[s]! += done.stats[s]!;
  let n = 0;
  for (let chunk = 0; chunk < chunks; chunk++) {
    const from = job.offsets[chunk]!;
    if (from !== n) keys.copyWithin(n, from, from + job.counts[chunk]!);
    n += job.counts[chunk]!;
  }
  // The sort in `threads` parts (any cut: the merge keeps equal hashes in part order), merged through scratch.
  const parts = Array.from({ length: threads + 1 }, (_, t) => Math.floor((n * t) / threads));
  const sorted = await finish(
    workers.map((worker, w) =>
      worker.run({
        kind: 'sort',
        keys: keys.subarray(parts[w + 1]!, parts[w + 2]!),
        scratch: scratch.subarray(parts[w + 1]!, parts[w + 2]!),
        n: parts[w + 2]! - parts[w + 1]!,
      }),
    ),
    () => (engine.sortKeys(keys, parts[1]!, scratch), parts[1]!),
  );
  engine.mergeSorted(
    keys,
    Uint32Array.from(parts.slice(0, threads)),
    Uint32Array.from({ length: threads }, (_, t) => parts[t + 1]! - parts[t]!),
    scratch,
  );
  keys.set(scratch.subarray(0, n));
  const workerNs = [...hashed.done, ...sorted.done].reduce((sum, done) => sum + done.cpuNs, 0);
  return { n, threads, workerCpuMs: workerNs / 1e6 };
}

/** Cut sorted keys[0, n) into `parts` at boundaries of runs of equal hashes (high words); parts + 1 positions. */
export function runBoundaries(keys: BigUint64Array, n: number, parts: number): number[] {
  const words = new Uint32Array(keys.buffer, keys.byteOffset, 2 * n);
  const cuts = [0];
  for (let part = 1; part < parts; part++) {
    let cut = Math.max(cuts[cuts.length - 1]!, Math.floor((n * part) / parts));
    while (cut > 0 && cut < n && words[2 * cut + 1] === words[2 * cut - 1]) cut++;
    cuts.push(cut);
  }
  cuts.push(n);
  return cuts;
}

export interface ThreadedConfirm {
  classes: number;
  bytesCompared: number;
  threads: number;
  workerCpuMs: number;
}

/** confirmInPlace on `threads` threads, parts cut at run boundaries; bounds as the one-thread pass leaves them. */
export async function confirmThreaded(
  engine: RangeEngine,
  keys: BigUint64Array,
  n: number,
  bases: BigUint64Array,
  flags: PageFlags,
  bounds: Uint32Array,
  scratch: BigUint64Array,
  threads: number,
  minKeysToSplit = MIN_KEYS_TO_SPLIT_CONFIRM,
): Promise<ThreadedConfirm> {
  requireShared(keys, bounds, scratch, flags.bytes);
  if (n < minKeysToSplit) threads = 1;
  const cuts = runBoundaries(keys, n, threads);
  // Part t works on keys, scratch and bounds from its first key on: a part of k keys has at most k / 2 classes
  // of two or more, 2 bounds each, so its bounds stay within its own k entries.
  const part = (t: number) => ({ from: cuts[t]!, n: cuts[t + 1]! - cuts[t]! });
  const workers = scanThreads(threads - 1);
  const jobs = workers.map((worker, w) => {
    const { from, n: count } = part(w + 1);
    return worker.run({
      kind: 'confirm',
      bases,
      flagBytes: flags.bytes,
      flagOffsets: flags.offsets,
      keys: keys.subarray(from),
      n: count,
      bounds: bounds.subarray(from),
      scratch: scratch.subarray(from),
    });
  });
  const compared = new Float64Array(1);
  const { own, done } = await finish(jobs, () => engine.confirmAt(keys, part(0).n, bases, flags, bounds, scratch, compared));
  // Each part's bounds are positions within the part: shifted to the whole array and put end to end (the
  // destination never passes the source: 2 × classes before a part ≤ the keys before it).
  let classes = own;
  let bytesCompared = compared[0]!;
  done.forEach((job, w) => {
    const from = part(w + 1).from;
    for (let k = 0; k < 2 * job.count; k++) bounds[2 * classes + k] = bounds[from + k]! + from;
    classes += job.count;
    bytesCompared += job.stats[0];
  });
  return { classes, bytesCompared, threads, workerCpuMs: done.reduce((sum, job) => sum + job.cpuNs, 0) / 1e6 };
}
