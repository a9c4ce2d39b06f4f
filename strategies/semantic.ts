/**
 * XME's semantic sharing: the guest kernel's code pages, found through its System.map, are shared between
 * guests running the same kernel — reading only those pages, no scan of guest memory, no change in the guest.
 *
 * Each guest's kernel is located (memory-only route and, where the backend can, the hypervisor route, which
 * must agree) and its linux_banner must be the booted build's banner, or the strategy refuses and proposes
 * nothing. Page k of [_text, _etext) is proposed for sharing among the guests whose page k is byte-identical.
 * Option rodata adds [__start_rodata, __end_rodata).
 */
import { PAGE_SIZE } from '../harness/vocabulary.ts';
import { XmeError } from '../harness/util/errors.ts';
import { pageSpan, type AddressRange } from '../harness/introspection/kernel-layout.ts';
import { KernelMismatchError, locateKernelByHypervisor, locateKernelInMemory, verifyBanner } from '../harness/introspection/kernel-locator.ts';
import type { KernelPlacement } from '../harness/introspection/kernel-placement.ts';
import type { MetricDeclarations, ScanCost, ShareGroup } from '../harness/sharing/types.ts';
import type { Guest } from '../harness/backends/types.ts';
import { identicalClasses } from './page-classes.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

type Route = 'memory' | 'hypervisor' | 'both';

export interface SemanticOptions {
  rodata: boolean;
  route: Route;
}

const RANGE_METRICS = {
  kernel_code: '[_text, _etext)',
  kernel_rodata: '[__start_rodata, __end_rodata)',
} as const;

export class SemanticStrategy implements Strategy {
  readonly name: string;
  readonly declaredMetrics: MetricDeclarations;
  private readonly placements = new Map<Guest, KernelPlacement>();

  constructor(private readonly options: SemanticOptions) {
    this.name = options.rodata ? 'semantic+rodata' : 'semantic';
    const ranges: (keyof typeof RANGE_METRICS)[] = options.rodata ? ['kernel_code', 'kernel_rodata'] : ['kernel_code'];
    this.declaredMetrics = Object.fromEntries(
      ranges.flatMap((label) => [
        [
          `${label}_pages`,
          { unit: 'pages', method: `pages of ${RANGE_METRICS[label]} from System.map (a partial last page counts); not reported when the scan refused` },
        ],
        [
          `${label}_identical_pages`,
          { unit: 'pages', method: `pages of ${RANGE_METRICS[label]} byte-identical in all guests at their located kernel placement` },
        ],
      ]),
    );
  }

  describe(): string {
    return `System.map sharing of kernel code${this.options.rodata ? ' and rodata' : ''} (located by ${this.options.route} route)`;
  }

  private async place(guest: Guest, context: StrategyContext, notes: string[]): Promise<KernelPlacement> {
    const { layout, version } = context.kernel;
    const known = this.placements.get(guest);
    if (known) {
      verifyBanner(guest, layout, known, version); // cheap: one read; catches a guest that rebooted
      return known;
    }
    let placement: KernelPlacement;
    if (this.options.route === 'hypervisor' && !guest.vcpu) {
      throw new XmeError(`guest ${guest.id}: the hypervisor route was asked for, but this backend cannot read vCPU state (use route "memory")`);
    }
    if (this.options.route === 'hypervisor') {
      placement = await locateKernelByHypervisor(guest, context.kernel);
    } else {
      placement = locateKernelInMemory(guest, context.kernel);
      if (this.options.route === 'both' && guest.vcpu) {
        const other = await locateKernelByHypervisor(guest, context.kernel);
        if (other.physicalBase !== placement.physicalBase || other.virtualOffset !== placement.virtualOffset) {
          throw new KernelMismatchError(
            guest.id,
            `memory route (base 0x${placement.physicalBase.toString(16)}, offset 0x${placement.virtualOffset.toString(16)}) and ` +
              `hypervisor route (base 0x${other.physicalBase.toString(16)}, offset 0x${other.virtualOffset.toString(16)}) disagree`,
          );
        }
      }
    }
    const route = this.options.route === 'both' && !guest.vcpu ? 'memory route; this backend has no vCPU introspection' : `${this.options.route} route`;
    notes.push(`${guest.id}: kernel at physical 0x${placement.physicalBase.toString(16)}, KASLR offset 0x${placement.virtualOffset.toString(16)} (${route})`);
    this.placements.set(guest, placement);
    return placement;
  }

  /**
   * Guest-physical page ranges this strategy shares in `guest` (kernel code, and rodata with that option):
   * known once a scan has located the guest's kernel, else undefined. The hybrid strategy leaves them to
   * semantic sharing and does not scan them.
   */
  kernelPageRanges(guest: Guest, context: StrategyContext): { first: number; count: number }[] | undefined {
    const placement = this.placements.get(guest);
    if (!placement) return undefined;
    const { layout } = context.kernel;
    const ranges = this.options.rodata ? [layout.code, layout.rodata] : [layout.code];
    const base = Number(placement.physicalBase / BigInt(PAGE_SIZE));
    return ranges.map((range) => {
      const span = pageSpan(layout, range);
      return { first: base + span.first, count: span.count };
    });
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const cost: ScanCost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    const notes: string[] = [];
    const { layout } = context.kernel;
    const placements: KernelPlacement[] = [];
    try {
      for (const guest of context.guests) placements.push(await this.place(guest, context, notes));
    } catch (error) {
      if (!(error instanceof XmeError)) throw error;
      return { groups: [], cost, refused: error.message, metrics: {}, notes };
    }

    const groups: ShareGroup[] = [];
    const metrics: Record<string, number> = {};
    const ranges: [keyof typeof RANGE_METRICS, AddressRange][] = [['kernel_code', layout.code]];
    if (this.options.rodata) ranges.push(['kernel_rodata', layout.rodata]);
    for (const [label, range] of ranges) {
      const span = pageSpan(layout, range);
      // One view per guest over the whole range; pages are compared in place (no per-page allocation).
      const gfns = placements.map((p) => Number(p.physicalBase / BigInt(PAGE_SIZE)) + span.first);
      const views = context.guests.map((guest, i) => guest.pages(gfns[i]!, span.count));
      let identicalInAll = 0;
      for (let k = 0; k < span.count; k++) {
        const start = k * PAGE_SIZE;
        const end = start + PAGE_SIZE;
        cost.pagesRead += views.length;
        const reference = views[0]!;
        let allEqual = true;
        for (let g = 1; g < views.length && allEqual; g++) {
          cost.bytesCompared += PAGE_SIZE;
          allEqual = views[g]!.compare(reference, start, end, start, end) === 0;
        }
        if (allEqual) {
          identicalInAll++;
          if (views.length > 1) groups.push({ pages: gfns.map((gfn, guest) => ({ guest, gfn: gfn + k })) });
          continue;
        }
        // Some guest differs: partition this page's guests into classes of identical bytes.
        const { classes, bytesCompared } = identicalClasses(
          views.map((view, guest) => ({ ref: { guest, gfn: gfns[guest]! + k }, bytes: view.subarray(start, end) })),
        );
        cost.bytesCompared += bytesCompared;
        for (const members of classes) groups.push({ pages: members });
      }
      metrics[`${label}_pages`] = span.count;
      metrics[`${label}_identical_pages`] = identicalInAll;
    }
    return { groups, cost, metrics, notes };
  }
}

export const semanticFactory: StrategyFactory = {
  name: 'semantic',
  summary: 'XME: share kernel code pages found through System.map (reads only those pages)',
  options: {
    rodata: 'boolean, default false: also share the kernel read-only data [__start_rodata, __end_rodata)',
    route: "'both' (default: memory-only and hypervisor routes must agree), 'memory' or 'hypervisor': how each guest's kernel is located",
  },
  create(options) {
    const rodata = options.rodata ?? false;
    const route = options.route ?? 'both';
    if (typeof rodata !== 'boolean') throw new XmeError(`strategy semantic: option 'rodata' must be true or false`);
    if (route !== 'memory' && route !== 'hypervisor' && route !== 'both') {
      throw new XmeError(`strategy semantic: option 'route' must be 'both', 'memory' or 'hypervisor'`);
    }
    return new SemanticStrategy({ rodata, route });
  },
};
