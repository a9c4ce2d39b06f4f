/**
 * Content-based page sharing (CBPS), the approach XME is compared with: read every page of every guest,
 * hash it, bucket pages by hash, and confirm each bucket byte by byte (a hash collision never becomes a
 * share). Identical pages are proposed whether they are in different guests or in the same one, as KSM
 * and Xen's CBPS do; all-zero pages are marked so that they are counted apart. Pages the host does not back
 * (holes in QEMU's RAM file) are zeros and are not read, like KSM, which scans only present pages.
 */
import { PAGE_SIZE } from '../harness/backends/types.ts';
import { XmeError } from '../harness/util/errors.ts';
import type { ScanCost, ShareGroup } from '../harness/sharing/types.ts';
import { backedRuns, pageBytes, ZERO_PAGE } from '../harness/sharing/resident-pages.ts';
import { identicalClasses } from './page-classes.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

export interface ContentOptions {
  /** Propose all-zero pages too (they are still counted apart). */
  zeroPages: boolean;
}

const GUEST_SHIFT = 2 ** 32;

export class ContentStrategy implements Strategy {
  readonly name = 'content';
  readonly declaredMetrics = {
    zero_pages: { unit: 'pages', method: 'pages the scan proposed in all-zero groups (hash of the zero page, confirmed byte by byte); holes the host does not back count as zero pages' },
    distinct_hashes: { unit: 'hashes', method: 'distinct page hashes over all pages of all guests in the scan (each a distinct content, collisions aside)' },
  };
  private hashes: BigUint64Array[] = [];

  constructor(private readonly options: ContentOptions) {}

  describe(): string {
    return `content-based: hash every page, confirm by byte compare${this.options.zeroPages ? '' : ', zero pages left out'}`;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const { guests, hasher } = context;
    const cost: ScanCost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    // Hash arrays are reused from scan to scan: a 256 MiB guest needs 512 KiB of hashes.
    this.hashes = guests.map((guest, i) =>
      this.hashes[i]?.length === guest.memoryPages ? this.hashes[i]! : new BigUint64Array(guest.memoryPages));

    const buckets = new Map<bigint, number[]>();
    const zeroHash = hasher.hashPage(ZERO_PAGE);
    guests.forEach((guest, g) => {
      const hashes = this.hashes[g]!;
      const residency = context.residency?.[g];
      // Holes (pages the host never backed) are zeros: hashed as such, never read (reading would allocate them).
      if (residency) hashes.fill(zeroHash);
      for (const run of backedRuns(guest.memoryPages, residency)) {
        hasher.hashPages(guest.pages(run.first, run.count), hashes.subarray(run.first, run.first + run.count));
        cost.pagesRead += run.count;
        cost.bytesHashed += run.count * PAGE_SIZE;
      }
      for (let gfn = 0; gfn < hashes.length; gfn++) {
        const hash = hashes[gfn]!;
        const bucket = buckets.get(hash);
        if (bucket) bucket.push(g * GUEST_SHIFT + gfn);
        else buckets.set(hash, [g * GUEST_SHIFT + gfn]);
      }
    });

    const groups: ShareGroup[] = [];
    let zeroPages = 0;
    let distinctContents = 0;
    for (const [hash, packed] of buckets) {
      distinctContents++;
      if (packed.length < 2) continue;
      if (hash === zeroHash && !this.options.zeroPages) continue;
      const pages = packed.map((p) => {
        const ref = { guest: Math.floor(p / GUEST_SHIFT), gfn: p % GUEST_SHIFT };
        return { ref, bytes: pageBytes(guests[ref.guest]!, ref.gfn, context.residency?.[ref.guest]) };
      });
      const { classes, bytesCompared } = identicalClasses(pages);
      cost.bytesCompared += bytesCompared;
      for (const members of classes) {
        const first = members[0]!;
        const zero = hash === zeroHash && pageBytes(guests[first.guest]!, first.gfn, context.residency?.[first.guest]).equals(ZERO_PAGE);
        if (zero) zeroPages += members.length;
        groups.push({ pages: members, zero });
      }
    }
    return {
      groups,
      cost,
      metrics: { zero_pages: zeroPages, distinct_hashes: distinctContents },
      notes: [],
    };
  }
}

export const contentFactory: StrategyFactory = {
  name: 'content',
  summary: 'CBPS: hash every page of every guest (XXH3), group by hash, confirm by byte compare',
  options: {
    zeroPages: 'boolean, default true: also share all-zero pages (always reported apart as zero_pages_shared)',
  },
  create(options) {
    const zeroPages = options.zeroPages ?? true;
    if (typeof zeroPages !== 'boolean') throw new XmeError(`strategy content: option 'zeroPages' must be true or false`);
    return new ContentStrategy({ zeroPages });
  },
};
