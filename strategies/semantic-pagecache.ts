/**
 * semantic-pagecache: page-cache (and shmem) frames that hold the same page of the same file in several guests,
 * found by what the guest kernels say they are (page classes, harness/introspection/page-classes.ts, taken by
 * the tick loop at the pause) — identical disks give identical inode numbers. The key (strategies/class-keys.ts:
 * file system, device, inode, generation, mtime, ctime, page index; shmem without generation and ctime) only
 * proposes; the ledger's byte comparison decides, and what it refused is counted back (`*_key_refused_pages`),
 * so the key's mismatch rate is measured. No guest page is read by the strategy, and none is scanned.
 */
import { XmeError } from '../harness/util/errors.ts';
import type { ApplyResult } from '../harness/sharing/ledger.ts';
import type { MetricDeclarations } from '../harness/sharing/types.ts';
import { ClassKeyProposer, keyMetricDeclarations, type KeyKind } from './class-keys.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

export interface PageCacheOptions {
  /** Also shmem pages (tmpfs, the initramfs rootfs). */
  shmem: boolean;
}

export class SemanticPageCacheStrategy implements Strategy {
  readonly name = 'semantic-pagecache';
  readonly readsPageClasses = true;
  readonly declaredMetrics: MetricDeclarations;
  private readonly proposer: ClassKeyProposer;

  constructor(private readonly options: PageCacheOptions) {
    const kinds: KeyKind[] = options.shmem ? ['pagecache', 'shmem'] : ['pagecache'];
    this.proposer = new ClassKeyProposer(kinds);
    this.declaredMetrics = keyMetricDeclarations(kinds);
  }

  describe(): string {
    return `page cache${this.options.shmem ? ' and shmem' : ''} by file and offset across guests (page classes from struct page; the ledger compares bytes)`;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const cost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    const classes = context.pageClasses;
    if (!classes) throw new XmeError('semantic-pagecache was given no page classes (a bug: it sets readsPageClasses)');
    if (classes.refused !== undefined) {
      this.proposer.idle();
      return { groups: [], cost, refused: classes.refused, metrics: {}, notes: [] };
    }
    const { groups, metrics } = this.proposer.propose(classes.guests, context.sharedFrameIds);
    return { groups, cost, metrics, notes: [] };
  }

  afterApply(applied: ApplyResult): Record<string, number> {
    return this.proposer.judge(applied);
  }
}

export const semanticPageCacheFactory: StrategyFactory = {
  name: 'semantic-pagecache',
  summary: 'share page-cache pages of the same file and offset across guests, by page classes (struct page), byte-verified by the ledger',
  options: {
    shmem: 'boolean, default true: also shmem pages (tmpfs, the initramfs rootfs), keyed without generation and ctime (random and boot-time there)',
  },
  create(options) {
    const shmem = options.shmem ?? true;
    if (typeof shmem !== 'boolean') throw new XmeError(`strategy semantic-pagecache: option 'shmem' must be true or false`);
    return new SemanticPageCacheStrategy({ shmem });
  },
};
