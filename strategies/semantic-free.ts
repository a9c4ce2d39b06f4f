/**
 * semantic-free: frames the guest kernel holds free count as reclaimed — a host can take them back and back
 * them by one zero frame until the guest uses them again (Chiang et al., VEE'13, on Xen; accounted on QEMU).
 * The free frames come from the page classes (harness/introspection/page-classes.ts, struct page read at the
 * pause). Their stale bytes are not data, so this is the one deliberate exception to "pages whose bytes differ
 * are never shared": they are never proposed as groups, never byte-verified, and the ledger keeps them apart
 * (harness/sharing/ledger.ts, "FREE PAGES RECLAIMED": reclaimed_free_pages, reclaim_faults — not in
 * frames_saved). Why a pause is enough, and what a reclaim fault is: there.
 *
 * Per-CPU list frames are left out by default (option perCpu): the kernel's allocator takes pages from the
 * per-CPU lists before it goes to the buddy lists (rmqueue_pcplist), so those are the frames reused next and a
 * reclaim there mostly buys a reclaim fault; they are a few hundred per guest (pcp high watermarks).
 */
import { XmeError } from '../harness/util/errors.ts';
import type { MetricDeclarations } from '../harness/sharing/types.ts';
import { FreeFrameTracker } from './free-frames.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

export const FREE_METRICS: MetricDeclarations = {
  free_buddy_frames: { unit: 'pages', method: "frames on the buddy allocator's free lists this tick, by the page classes (all guests)" },
  free_per_cpu_frames: { unit: 'pages', method: 'frames on the per-CPU free lists this tick, by the page classes (all guests)' },
  free_proposed_frames: { unit: 'pages', method: 'free frames proposed for reclaim this tick (buddy; per-CPU too with option perCpu)' },
};

export class SemanticFreeStrategy implements Strategy {
  readonly name = 'semantic-free';
  readonly readsPageClasses = true;
  readonly declaredMetrics = FREE_METRICS;

  private readonly free: FreeFrameTracker;

  constructor(private readonly options: { perCpu: boolean }) {
    this.free = new FreeFrameTracker(options.perCpu);
  }

  describe(): string {
    return `free frames reclaimed (${this.options.perCpu ? 'buddy and per-CPU lists' : 'buddy lists'}; page classes from struct page; counted apart, not byte-verified)`;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const cost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    const classes = context.pageClasses;
    if (!classes) throw new XmeError('semantic-free was given no page classes (a bug: it sets readsPageClasses)');
    if (classes.refused !== undefined) {
      this.free.forget();
      return { groups: [], cost, refused: classes.refused, metrics: {}, notes: [], freeFrames: { unknown: classes.refused } };
    }
    const free = this.free.propose(classes.guests);
    return {
      groups: [],
      cost,
      metrics: {
        free_buddy_frames: free.buddy,
        free_per_cpu_frames: free.perCpuFrames,
        free_proposed_frames: free.proposed,
      },
      notes: [],
      freeFrames: free.proposal,
    };
  }
}

export const semanticFreeFactory: StrategyFactory = {
  name: 'semantic-free',
  summary: 'count the frames guest kernels hold free (page classes, struct page) as reclaimed, apart from shared frames (reclaimed_free_pages)',
  options: {
    perCpu: 'boolean, default false: also the per-CPU free lists, which the kernel allocates from first',
  },
  create(options) {
    const perCpu = options.perCpu ?? false;
    if (typeof perCpu !== 'boolean') throw new XmeError(`strategy semantic-free: option 'perCpu' must be true or false`);
    return new SemanticFreeStrategy({ perCpu });
  },
};
