/**
 * semantic-union: every page xme can share by what it is, with no content scan at all — the union of
 *  - kernel code and read-only data, located through System.map (semantic+rodata: SemanticStrategy; a page found
 *    differing is compared again only after REFUSAL_TICKS ticks, as a refused key is proposed again),
 *  - module text, page cache and shmem, keyed by what the page classes say they are (strategies/class-keys.ts),
 *  - free frames, reclaimed apart (semantic-free; sharing/ledger.ts "FREE PAGES RECLAIMED").
 * The keys only propose; the ledger's byte comparison decides for everything but the free frames, which are
 * never shared, only reclaimed. If either the System.map route or the page classes refuse, the strategy
 * proposes nothing that tick (status refused: …) and no free frame stays reclaimed; pages already shared stay
 * in shared state until written, as always.
 */
import { XmeError } from '../harness/util/errors.ts';
import type { ApplyResult } from '../harness/sharing/ledger.ts';
import type { MetricDeclarations } from '../harness/sharing/types.ts';
import { ClassKeyProposer, keyMetricDeclarations, REFUSAL_TICKS, type KeyKind } from './class-keys.ts';
import { FreeFrameTracker } from './free-frames.ts';
import { FREE_METRICS } from './semantic-free.ts';
import { SemanticStrategy } from './semantic.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

type Route = 'memory' | 'hypervisor' | 'both';

export interface UnionOptions {
  route: Route;
  shmem: boolean;
  perCpu: boolean;
}

/** What the union needs of its System.map route (SemanticStrategy; a stand-in in unit tests). */
export type KernelImageRoute = Pick<SemanticStrategy, 'scan' | 'declaredMetrics' | 'describe'>;

export class SemanticUnionStrategy implements Strategy {
  readonly name = 'semantic-union';
  readonly readsPageClasses = true;
  readonly declaredMetrics: MetricDeclarations;
  private readonly kernelImage: KernelImageRoute;
  private readonly proposer: ClassKeyProposer;
  private readonly free: FreeFrameTracker;

  constructor(
    private readonly options: UnionOptions,
    kernelImage?: KernelImageRoute,
  ) {
    // Code and rodata pages found differing are compared again after as many ticks as a refused key is held back.
    this.kernelImage = kernelImage ?? new SemanticStrategy({ rodata: true, route: options.route, recheckDifferingAfter: REFUSAL_TICKS });
    const kinds: KeyKind[] = options.shmem ? ['module_text', 'pagecache', 'shmem'] : ['module_text', 'pagecache'];
    this.proposer = new ClassKeyProposer(kinds);
    this.free = new FreeFrameTracker(options.perCpu);
    this.declaredMetrics = { ...this.kernelImage.declaredMetrics, ...keyMetricDeclarations(kinds), ...FREE_METRICS };
  }

  describe(): string {
    return `semantic union: ${this.kernelImage.describe()}; module text, page cache${this.options.shmem ? ', shmem' : ''} by page classes; free frames reclaimed apart (${this.options.perCpu ? 'buddy and per-CPU' : 'buddy'}); no content scan`;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const classes = context.pageClasses;
    if (!classes) throw new XmeError('semantic-union was given no page classes (a bug: it sets readsPageClasses)');
    const image = await this.kernelImage.scan(context);
    if (image.refused !== undefined || classes.refused !== undefined) {
      const reason = image.refused ?? (classes.refused as string);
      this.proposer.idle();
      this.free.forget();
      return { groups: [], cost: image.cost, refused: reason, metrics: {}, notes: image.notes, freeFrames: { unknown: reason } };
    }
    const keyed = this.proposer.propose(classes.guests, context.sharedFrameIds);
    const free = this.free.propose(classes.guests);
    return {
      groups: [...image.groups, ...keyed.groups],
      cost: image.cost,
      metrics: {
        ...image.metrics,
        ...keyed.metrics,
        free_buddy_frames: free.buddy,
        free_per_cpu_frames: free.perCpuFrames,
        free_proposed_frames: free.proposed,
      },
      notes: image.notes,
      freeFrames: free.proposal,
    };
  }

  afterApply(applied: ApplyResult): Record<string, number> {
    return this.proposer.judge(applied);
  }
}

export const semanticUnionFactory: StrategyFactory = {
  name: 'semantic-union',
  summary:
    'everything shared by meaning, no content scan: kernel code + rodata (System.map), module text, page cache and shmem (page classes), free frames reclaimed apart',
  options: {
    route: "'both' (default), 'memory' or 'hypervisor': how each guest's kernel is located for code and rodata (as semantic's)",
    shmem: 'boolean, default true: also shmem pages (as semantic-pagecache)',
    perCpu: 'boolean, default false: also reclaim the per-CPU free lists (as semantic-free)',
  },
  create(options) {
    const { route = 'both', shmem = true, perCpu = false } = options;
    if (route !== 'memory' && route !== 'hypervisor' && route !== 'both')
      throw new XmeError(`strategy semantic-union: option 'route' must be 'both', 'memory' or 'hypervisor'`);
    if (typeof shmem !== 'boolean') throw new XmeError(`strategy semantic-union: option 'shmem' must be true or false`);
    if (typeof perCpu !== 'boolean') throw new XmeError(`strategy semantic-union: option 'perCpu' must be true or false`);
    return new SemanticUnionStrategy({ route, shmem, perCpu });
  },
};
