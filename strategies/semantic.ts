/**
 * XME's semantic sharing: the guest kernel's code pages, found through its System.map, are shared between
 * guests running the same kernel — reading only those pages, no scan of guest memory, no change in the guest.
 *
 * Each guest's kernel is located (memory-only route and, where the backend can, the hypervisor route, which
 * must agree) and its linux_banner must be the booted build's banner, or the strategy refuses and proposes
 * nothing. Page k of [_text, _etext) is proposed for sharing among the guests whose page k is byte-identical.
 * Option rodata adds [__start_rodata, __end_rodata).
 *
 * A mixed fleet (guests booting images of different kernel builds, scenario field guestImages) is grouped by
 * build: each guest is located and verified with its own image's System.map, and pages are proposed only among
 * guests of one build — page k of one build's System.map means nothing in another build's kernel. What
 * different builds have in common byte for byte is content-based sharing's to find, not this strategy's.
 */
import { PAGE_SIZE, type PageRef } from '../harness/vocabulary.ts';
import { XmeError } from '../harness/util/errors.ts';
import { pageSpan, type AddressRange } from '../harness/introspection/kernel-layout.ts';
import { KernelMismatchError, locateKernelByHypervisor, locateKernelInMemory, verifyBanner } from '../harness/introspection/kernel-locator.ts';
import type { KernelPlacement } from '../harness/introspection/kernel-placement.ts';
import type { MetricDeclarations, ScanCost, ShareGroup } from '../harness/sharing/types.ts';
import type { Guest } from '../harness/backends/types.ts';
import type { GuestImage } from '../harness/images/manifest.ts';
import { kernelInfo, type KernelInfo } from '../harness/introspection/kernel-info.ts';
import { compareAcrossGuests, compareSomeAcrossGuests, partitionAcrossGuests } from '../harness/hashing/native-compare.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

type Route = 'memory' | 'hypervisor' | 'both';

export interface SemanticOptions {
  rodata: boolean;
  route: Route;
  /**
   * Not a scenario option (semantic-union sets it): a page found differing in some guest is compared again only
   * after this many ticks. With KASLR ≈ 2,800 code and rodata pages of each guest differ (relocated pointers)
   * and stay so; comparing and partitioning them again at every tick was a fifth of semantic-union's tick. A
   * page held back is not proposed (nothing is shared unseen); its guests' pages that already share stay shared
   * until written.
   */
  recheckDifferingAfter?: number;
}

/** Per range of one build and placement: the tick at which each page was last found differing (0: not since compared). */
interface DifferingPages {
  at: Int32Array;
}

const RANGE_METRICS = {
  kernel_code: '[_text, _etext)',
  kernel_rodata: '[__start_rodata, __end_rodata)',
} as const;

export class SemanticStrategy implements Strategy {
  readonly name: string;
  readonly declaredMetrics: MetricDeclarations;
  private readonly placements = new Map<Guest, KernelPlacement>();
  /** Kernels of guests whose image is not the run's (a mixed fleet), read from each image once. */
  private readonly otherKernels = new Map<GuestImage, KernelInfo>();
  /** With recheckDifferingAfter: per range and placement (labels and guest frames), the pages found differing. */
  private readonly differing = new Map<string, DifferingPages>();
  /** Scans so far (the clock of DifferingPages.at). */
  private tick = 0;

  constructor(private readonly options: SemanticOptions) {
    this.name = options.rodata ? 'semantic+rodata' : 'semantic';
    const ranges: (keyof typeof RANGE_METRICS)[] = options.rodata ? ['kernel_code', 'kernel_rodata'] : ['kernel_code'];
    const rangeMetrics: MetricDeclarations = Object.fromEntries(
      ranges.flatMap((label) => [
        [
          `${label}_pages`,
          { unit: 'pages', method: `pages of ${RANGE_METRICS[label]} from System.map (a partial last page counts); not reported when the scan refused` },
        ],
        ...(options.recheckDifferingAfter === undefined
          ? []
          : [
              [
                `${label}_held_back_pages`,
                {
                  unit: 'pages',
                  method: `pages of ${RANGE_METRICS[label]} found differing in some guest at one of the last ${options.recheckDifferingAfter} ticks: not compared or proposed this tick (counted as differing)`,
                },
              ] as const,
            ]),
        [
          `${label}_identical_pages`,
          {
            unit: 'pages',
            method: `pages of ${RANGE_METRICS[label]} byte-identical in all guests at their located kernel placement (a mixed fleet: in all guests of one kernel build, summed over builds; a build with a single guest counts none)`,
          },
        ],
      ]),
    );
    this.declaredMetrics = {
      ...rangeMetrics,
      kernel_builds: {
        unit: 'builds',
        method: "distinct kernel builds among the guests (banner version of each guest's image); pages are shared within a build only",
      },
    };
  }

  describe(): string {
    return `System.map sharing of kernel code${this.options.rodata ? ' and rodata' : ''} (located by ${this.options.route} route)`;
  }

  /** The guest's own kernel: the run's (System.map override included) for the run's image, else its image's. */
  private kernelOf(guest: Guest, context: StrategyContext): KernelInfo {
    if (guest.image === context.image || guest.image.dir === context.image.dir) return context.kernel;
    let kernel = this.otherKernels.get(guest.image);
    if (!kernel) {
      kernel = kernelInfo(guest.image);
      this.otherKernels.set(guest.image, kernel);
    }
    return kernel;
  }

  private async place(guest: Guest, context: StrategyContext, notes: string[]): Promise<KernelPlacement> {
    const kernel = this.kernelOf(guest, context);
    const { layout, version } = kernel;
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
      placement = await locateKernelByHypervisor(guest, kernel);
    } else {
      placement = locateKernelInMemory(guest, kernel);
      if (this.options.route === 'both' && guest.vcpu) {
        const other = await locateKernelByHypervisor(guest, kernel);
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
    notes.push(
      `${guest.id}: ${version.release} kernel at physical 0x${placement.physicalBase.toString(16)}, KASLR offset 0x${placement.virtualOffset.toString(16)} (${route})`,
    );
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
    const { layout } = this.kernelOf(guest, context);
    const ranges = this.options.rodata ? [layout.code, layout.rodata] : [layout.code];
    const base = Number(placement.physicalBase / BigInt(PAGE_SIZE));
    return ranges.map((range) => {
      const span = pageSpan(layout, range);
      return { first: base + span.first, count: span.count };
    });
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    this.tick++;
    const cost: ScanCost = { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 };
    const notes: string[] = [];
    const placements: KernelPlacement[] = [];
    try {
      for (const guest of context.guests) placements.push(await this.place(guest, context, notes));
    } catch (error) {
      if (!(error instanceof XmeError)) throw error;
      return { groups: [], cost, refused: error.message, metrics: {}, notes };
    }

    const groups: ShareGroup[] = [];
    const metrics: Record<string, number> = {};
    // Guests by kernel build (one System.map each); pages are proposed only among guests of one build.
    const builds = new Map<string, { kernel: KernelInfo; inBuild: number[] }>();
    context.guests.forEach((guest, index) => {
      const kernel = this.kernelOf(guest, context);
      const build = builds.get(kernel.version.text) ?? { kernel, inBuild: [] };
      build.inBuild.push(index);
      builds.set(kernel.version.text, build);
    });
    metrics.kernel_builds = builds.size;
    // Every (build, range): page k of the range is compared among that build's guests only.
    const ranges = [...builds.values()].flatMap(({ kernel: { layout }, inBuild }) => {
      const own: [keyof typeof RANGE_METRICS, AddressRange][] = [['kernel_code', layout.code]];
      if (this.options.rodata) own.push(['kernel_rodata', layout.rodata]);
      return own.map(([label, range]) => ({ label, range, layout, inBuild }));
    });
    for (const { label, range, layout, inBuild } of ranges) {
      const span = pageSpan(layout, range);
      // One view per guest over the whole range; pages are compared in place (no per-page allocation).
      const gfns = inBuild.map((g) => Number(placements[g]!.physicalBase / BigInt(PAGE_SIZE)) + span.first);
      const views = inBuild.map((g, i) => context.guests[g]!.pages(gfns[i]!, span.count));
      let identicalInAll = 0;
      // Page k of every guest against the first guest's, in C at memcmp's speed (harness/hashing/native-compare.ts),
      // but for the pages the ledger already holds as one frame, verified and unwritten since (after the first
      // tick, nearly all kernel code): a mechanism knows what it shares and compares only the rest.
      const firstDiff = new Uint16Array(span.count);
      // 1 where page k was compared this tick; the rest are one frame already and are not proposed again.
      const wasCompared = new Uint8Array(span.count);
      let toCompare = 0;
      for (const run of this.pagesToCompare(context, inBuild, gfns, span.count)) {
        wasCompared.fill(1, run.first, run.first + run.count);
        toCompare += run.count;
      }
      const recheck = this.options.recheckDifferingAfter;
      const known = recheck === undefined ? undefined : this.differingPages(`${label}|${gfns.join(',')}`, span.count);
      // 1 where page k is held back this tick (known differing, compared again later).
      const held = new Uint8Array(known ? span.count : 0);
      let heldBack = 0;
      if (known && recheck !== undefined) {
        for (let k = 0; k < span.count; k++) {
          const at = known.at[k]!;
          if (at === 0 || wasCompared[k] !== 1 || this.tick - at >= recheck) continue;
          wasCompared[k] = 0;
          held[k] = 1;
          toCompare--;
          heldBack++;
        }
      }
      if (toCompare === span.count) cost.bytesCompared += compareAcrossGuests(views, span.count, firstDiff).bytesCompared;
      else if (toCompare > 0) cost.bytesCompared += compareSomeAcrossGuests(views, span.count, wasCompared, firstDiff).bytesCompared;
      cost.pagesRead += views.length * toCompare;
      // The pages some guest differs in, partitioned into classes of identical bytes, in one native call.
      const representative = new Uint16Array(span.count * views.length);
      const paired = new Uint8Array(span.count);
      cost.bytesCompared += partitionAcrossGuests(views, span.count, firstDiff, representative, paired).bytesCompared;
      for (let k = 0; k < span.count; k++) {
        if (known) {
          if (held[k] === 1) continue; // differing, as last compared
          if (wasCompared[k] === 1) known.at[k] = firstDiff[k] === 0 ? 0 : this.tick;
        }
        if (firstDiff[k] === 0) {
          identicalInAll++;
          if (views.length > 1 && wasCompared[k] === 1) groups.push({ pages: gfns.map((gfn, i) => ({ guest: inBuild[i]!, gfn: gfn + k })) });
          continue;
        }
        // Some guest differs. A page alone in its class has no partner: nothing to propose.
        if (paired[k] !== 1) continue;
        const at = k * views.length;
        for (let first = 0; first < views.length; first++) {
          if (representative[at + first] !== first) continue;
          const members: PageRef[] = [];
          for (let i = first; i < views.length; i++) if (representative[at + i] === first) members.push({ guest: inBuild[i]!, gfn: gfns[i]! + k });
          if (members.length > 1) groups.push({ pages: members });
        }
      }
      metrics[`${label}_pages`] = (metrics[`${label}_pages`] ?? 0) + span.count;
      if (known) metrics[`${label}_held_back_pages`] = (metrics[`${label}_held_back_pages`] ?? 0) + heldBack;
      // A build with one guest of several has no partner: none of its pages is shareable (it still has pages).
      const partnered = inBuild.length > 1 || context.guests.length === 1;
      metrics[`${label}_identical_pages`] = (metrics[`${label}_identical_pages`] ?? 0) + (partnered ? identicalInAll : 0);
    }
    return { groups, cost, metrics, notes };
  }

  /** The differing pages of one range at one placement, made on first use. */
  private differingPages(key: string, count: number): DifferingPages {
    let known = this.differing.get(key);
    if (!known || known.at.length !== count) {
      known = { at: new Int32Array(count) };
      this.differing.set(key, known);
    }
    return known;
  }

  /** Runs of pages k of a range (gfns[i] + k in guest inBuild[i]) not already one frame in the ledger: those to compare. */
  private *pagesToCompare(
    context: StrategyContext,
    inBuild: readonly number[],
    gfns: readonly number[],
    count: number,
  ): Generator<{ first: number; count: number }> {
    const frameIds = inBuild.length > 1 ? context.sharedFrameIds : undefined;
    const onOneFrame = inBuild.length > 1 ? context.sharedOnOneFrame : undefined;
    if (!frameIds && !onOneFrame) {
      yield { first: 0, count };
      return;
    }
    // Page k is one frame already if every guest's page k is on the same frame (id ≠ 0).
    const shares = (k: number): boolean => {
      if (!frameIds) return onOneFrame!(inBuild.map((guest, i) => ({ guest, gfn: gfns[i]! + k })));
      const id = frameIds[inBuild[0]!]![gfns[0]! + k] ?? 0;
      if (id === 0) return false;
      for (let i = 1; i < inBuild.length; i++) if (frameIds[inBuild[i]!]![gfns[i]! + k] !== id) return false;
      return true;
    };
    let first = -1;
    for (let k = 0; k <= count; k++) {
      const shared = k < count && shares(k);
      if (k < count && !shared) {
        if (first < 0) first = k;
        continue;
      }
      if (first >= 0) yield { first, count: k - first };
      first = -1;
    }
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
