/**
 * Content-based page sharing (CBPS), the full-rescan model — the upper bound of what content scanning finds
 * and what it costs per pass: read every backed page of every guest each tick, hash it, sort the hashes,
 * confirm each candidate group byte by byte (a hash collision never becomes a share). Identical pages are
 * proposed whether they are in different guests or in the same one, as KSM and Xen's CBPS do; all-zero pages
 * are one group, counted apart. Pages the host does not back (holes) are zeros and are not read, like KSM,
 * which scans only present pages. The per-page loops run in C (harness/hashing/native/page-scan.c): one call
 * for the whole pass over mapped guests, one per run of backed pages for guests that copy; the index is typed
 * arrays (content-index.ts), ≈ 21 bytes per guest page. Over mapped guests the pass runs on several threads
 * (harness/hashing/parallel-scan.ts: by ranges of gfns, results identical to one thread); the scan threads'
 * CPU is reported (ScanResult.threads) and added to the scan's by the tick loop. bytesCompared counts a whole
 * page for every compare, also one that stopped at the first difference (an upper bound).
 * The incremental scanner a real system would run is content-incremental.ts.
 */
import type { Guest } from '../harness/backends/types.ts';
import { XmeError } from '../harness/util/errors.ts';
import { PAGE_ZERO } from '../harness/hashing/scan-engine.ts';
import type { ScanCost, ShareGroup } from '../harness/sharing/types.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import { classGroups, distinctHashes, flaggedPages, hashSortConfirm, KeyIndex } from './content-index.ts';
import { scanThreadCount } from '../harness/hashing/scan-threads.ts';
import { scanEngineFor } from './scan-engine-choice.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

export interface ContentOptions {
  /** Propose all-zero pages too (they are still counted apart). */
  zeroPages: boolean;
  /**
   * Threads for the pass, the harness thread included (harness/hashing/parallel-scan.ts; same results on any
   * number). Unset: XME_SCAN_THREADS, else the host's cores (scan-threads.ts scanThreadCount). The bench sets it.
   */
  scanThreads?: number;
}

export class ContentStrategy implements Strategy {
  readonly name = 'content';
  readonly declaredMetrics = {
    zero_pages: {
      unit: 'pages',
      method: 'all-zero pages (confirmed byte by byte right after hashing, in cache); holes the host does not back count as zero pages',
    },
    distinct_hashes: {
      unit: 'hashes',
      method: 'distinct 32-bit hash prefixes among the non-zero pages of all guests, plus one for the zero page (each a distinct content, collisions aside)',
    },
    scan_threads: {
      unit: 'threads',
      method:
        'threads the pass ran on, the harness thread included (harness/hashing/parallel-scan.ts, by ranges of gfns; the same groups as one thread): option scanThreads, else XME_SCAN_THREADS, else the host’s cores, one per 16 MiB of the longest guest at most; 1 where a guest is not mapped',
    },
    pass_wall_ms: {
      unit: 'ms',
      method:
        'wall time of the pass on all its threads (hash, sort and byte confirmation; performance.now around it), the part of scan_wall_ms that more threads shorten; its CPU is scan_cpu_ms (harness thread + scan threads)',
    },
    scan_worker_cpu_ms: {
      unit: 'ms',
      method:
        'CPU of the scan threads besides the harness thread (CLOCK_THREAD_CPUTIME_ID of each around its native calls); included in scan_cpu_ms, tick_cpu_ms and mechanism_cpu_ms, whose wall time is scan_wall_ms',
    },
  };
  private readonly index = new KeyIndex();

  constructor(private readonly options: ContentOptions) {}

  describe(): string {
    return `content-based, full rescan (upper-bound model): hash every page each tick, confirm by byte compare${this.options.zeroPages ? '' : ', zero pages left out'}`;
  }

  /** Bytes the index holds per guest page (the bench's memory figure). */
  indexBytesPerPage(guests: readonly Guest[]): number {
    const pages = guests.reduce((sum, g) => sum + g.memoryPages, 0);
    return pages ? this.index.bytes / pages : 0;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const { guests } = context;
    const engine = scanEngineFor(context.hasher);
    const stats = new Float64Array(3);
    const wanted = scanThreadCount(Math.max(0, ...guests.map((g) => g.memoryPages)), this.options.scanThreads);
    const passStart = performance.now();
    const { n, pagesRead, confirmed, threads } = await hashSortConfirm(engine, this.index, guests, context.residency, stats, wanted);
    const passWallMs = performance.now() - passStart;
    // bytesHashed counts what XXH3 read: a page confirmed equal to its partner by memcmp is not hashed.
    const cost: ScanCost = { pagesRead, bytesHashed: stats[1]!, bytesCompared: stats[0]! + confirmed.bytesCompared };
    const groups: ShareGroup[] = classGroups(this.index, confirmed);
    const zeroPages = flaggedPages(this.index, guests, PAGE_ZERO, engine);
    if (this.options.zeroPages && zeroPages.length >= 2) groups.push(new PackedGroup(zeroPages, true));
    return {
      groups,
      cost,
      metrics: {
        zero_pages: zeroPages.length,
        distinct_hashes: distinctHashes(this.index, n) + (zeroPages.length > 0 ? 1 : 0),
        scan_threads: threads.threads,
        pass_wall_ms: passWallMs,
        scan_worker_cpu_ms: threads.workerCpuMs,
      },
      notes: [],
      threads: { count: threads.threads, workerCpuMs: threads.workerCpuMs },
    };
  }
}

export const contentFactory: StrategyFactory = {
  name: 'content',
  summary: 'CBPS, full rescan (upper-bound model): hash every page of every guest each tick (XXH3, in C), group by hash, confirm by byte compare',
  options: {
    zeroPages: 'boolean, default true: also share all-zero pages (always reported apart as zero_pages_shared)',
  },
  create(options) {
    const zeroPages = options.zeroPages ?? true;
    if (typeof zeroPages !== 'boolean') throw new XmeError(`strategy content: option 'zeroPages' must be true or false`);
    return new ContentStrategy({ zeroPages });
  },
};
