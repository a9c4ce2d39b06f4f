/**
 * Hybrid: semantic sharing for the kernel's code and rodata (located through System.map, compared in place,
 * never scanned), and the KSM-like incremental content scan (content-incremental.ts) for all other pages.
 * The point: most of content sharing's savings at close to semantic sharing's CPU — the kernel image is where
 * identical guests are surely identical, and the rest is scanned at KSM's pace. Where the savings come from is
 * reported per route: the pages each route last proposed (semantic, content, zero), counted over the run.
 * If the semantic route refuses (wrong System.map), everything is left to the content scan, and that is noted.
 */
import type { Guest } from '../harness/backends/types.ts';
import type { MetricDeclarations } from '../harness/sharing/types.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import { gfnOfIndex, guestOfIndex } from '../harness/hashing/scan-engine.ts';
import { XmeError } from '../harness/util/errors.ts';
import { INCREMENTAL_OPTION_DOCS, IncrementalContentStrategy, parseIncrementalOptions, type IncrementalOptions } from './content-incremental.ts';
import { SemanticStrategy } from './semantic.ts';
import type { ScanResult, Strategy, StrategyContext, StrategyFactory } from './types.ts';

type Route = 'memory' | 'hypervisor' | 'both';

/** Which route last proposed a page. */
const BY_SEMANTIC = 1;
const BY_CONTENT = 2;
const BY_ZERO = 3;

/** The content part: the incremental scanner with the kernel's pages excluded. */
class ContentPart extends IncrementalContentStrategy {
  exclude(guests: readonly Guest[], ranges: ({ first: number; count: number }[] | undefined)[]): void {
    this.prepare(guests);
    ranges.forEach((list, g) => list?.forEach((r) => this.setExcluded(g, r.first, r.count)));
  }
}

/** What the hybrid needs of its semantic route (SemanticStrategy; a stand-in in unit tests). */
export type KernelRoute = Pick<SemanticStrategy, 'scan' | 'kernelPageRanges' | 'declaredMetrics' | 'describe'>;

export class HybridStrategy implements Strategy {
  readonly name = 'hybrid';
  readonly declaredMetrics: MetricDeclarations;
  private readonly semantic: KernelRoute;
  private readonly content: ContentPart;
  private excluded = false;
  private source: Uint8Array[] = [];

  constructor(options: IncrementalOptions & { route: Route }, semantic?: KernelRoute) {
    this.semantic = semantic ?? new SemanticStrategy({ rodata: true, route: options.route });
    this.content = new ContentPart(options);
    this.declaredMetrics = {
      ...this.semantic.declaredMetrics,
      ...this.content.declaredMetrics,
      pages_by_semantic: {
        unit: 'pages',
        method: 'pages whose latest proposal came from the semantic route (kernel code and rodata through System.map), over the run so far',
      },
      pages_by_content: { unit: 'pages', method: 'pages whose latest proposal came from the incremental content scan (not all-zero), over the run so far' },
      pages_by_zero: { unit: 'pages', method: 'all-zero pages whose latest proposal came from the incremental content scan, over the run so far' },
    };
  }

  describe(): string {
    return `hybrid: ${this.semantic.describe()}; the rest ${this.content.describe()}`;
  }

  async scan(context: StrategyContext): Promise<ScanResult> {
    const semantic = await this.semantic.scan(context);
    const notes = [...semantic.notes];
    if (!this.excluded) {
      // Once the kernels are located, their pages are the semantic route's: the content scan never reads them.
      const ranges = context.guests.map((g) => this.semantic.kernelPageRanges(g, context));
      if (semantic.refused) notes.push(`semantic route refused (${semantic.refused}): every page is left to the content scan`);
      else this.content.exclude(context.guests, ranges);
      this.excluded = true;
    }
    const content = await this.content.scan(context);
    this.attribute(
      context.guests,
      semantic.groups.map((g) => g.pages.map((p) => ({ guest: p.guest, gfn: p.gfn }))),
      BY_SEMANTIC,
    );
    for (const group of content.groups) {
      const route = group.zero ? BY_ZERO : BY_CONTENT;
      if (group instanceof PackedGroup) this.attributeIndices(context.guests, group.indices, route);
      else this.attribute(context.guests, [group.pages], route);
    }
    return {
      groups: [...semantic.groups, ...content.groups],
      cost: {
        pagesRead: semantic.cost.pagesRead + content.cost.pagesRead,
        bytesHashed: semantic.cost.bytesHashed + content.cost.bytesHashed,
        bytesCompared: semantic.cost.bytesCompared + content.cost.bytesCompared,
      },
      metrics: { ...semantic.metrics, ...content.metrics, ...this.routeCounts() },
      notes: [...notes, ...content.notes],
    };
  }

  private sourceOf(guests: readonly Guest[]): Uint8Array[] {
    if (this.source.length !== guests.length) this.source = guests.map((g) => new Uint8Array(g.memoryPages));
    return this.source;
  }

  private attribute(guests: readonly Guest[], groups: { guest: number; gfn: number }[][], route: number): void {
    const source = this.sourceOf(guests);
    for (const pages of groups) for (const p of pages) source[p.guest]![p.gfn] = route;
  }

  private attributeIndices(guests: readonly Guest[], indices: Uint32Array, route: number): void {
    const source = this.sourceOf(guests);
    for (const index of indices) source[guestOfIndex(index)]![gfnOfIndex(index)] = route;
  }

  private routeCounts(): Record<string, number> {
    const counts = [0, 0, 0, 0];
    for (const map of this.source) for (let i = 0; i < map.length; i++) counts[map[i]!]!++;
    return { pages_by_semantic: counts[BY_SEMANTIC]!, pages_by_content: counts[BY_CONTENT]!, pages_by_zero: counts[BY_ZERO]! };
  }
}

export const hybridFactory: StrategyFactory = {
  name: 'hybrid',
  summary: 'semantic for kernel code and rodata (no scanning there), the KSM-like incremental content scan for the rest',
  options: {
    ...INCREMENTAL_OPTION_DOCS,
    route: "'both' (default), 'memory' or 'hypervisor': how each guest's kernel is located (as semantic's)",
  },
  create(options) {
    const { route = 'both', ...rest } = options;
    if (route !== 'memory' && route !== 'hypervisor' && route !== 'both')
      throw new XmeError(`strategy hybrid: option 'route' must be 'both', 'memory' or 'hypervisor'`);
    return new HybridStrategy({ ...parseIncrementalOptions('hybrid', rest), route });
  },
};
