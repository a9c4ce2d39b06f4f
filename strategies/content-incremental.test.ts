import { beforeAll, describe, expect, it } from 'vitest';
import { MemoryGuest } from '../harness/testing/memory-guest.ts';
import { defaultHasher, type PageHasher } from '../harness/hashing/page-hasher.ts';
import type { ShareGroup } from '../harness/sharing/types.ts';
import { IncrementalContentStrategy } from './content-incremental.ts';
import { HybridStrategy, type KernelRoute } from './hybrid.ts';
import type { ScanResult, StrategyContext } from './types.ts';

function fill(guest: MemoryGuest, gfn: number, seed: number): void {
  const page = guest.pages(gfn, 1);
  for (let i = 0; i < page.length; i += 4) page.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
}

/** Two guests of `pages` pages, every page distinct, except those the test makes equal. */
function twoGuests(pages: number): MemoryGuest[] {
  const guests = [new MemoryGuest('g0', pages), new MemoryGuest('g1', pages)];
  guests.forEach((guest, g) => {
    for (let gfn = 0; gfn < pages; gfn++) fill(guest, gfn, 1000 * (g + 1) + gfn);
  });
  return guests;
}

const names = (groups: ShareGroup[]) =>
  groups
    .map((g) =>
      g.pages
        .map((p) => `${p.guest}:${p.gfn}`)
        .sort()
        .join(' '),
    )
    .sort();

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});
const context = (guests: MemoryGuest[]) => ({ guests, hasher }) as unknown as StrategyContext;

describe('content-incremental', () => {
  it('proposes a page only after its hash was unchanged on two visits (volatility filter)', async () => {
    const guests = twoGuests(4);
    fill(guests[1]!, 2, 1002); // g1:2 = g0:2
    fill(guests[1]!, 3, 1003); // g1:3 = g0:3, but g0:3 changes between visits
    const strategy = new IncrementalContentStrategy({ pagesPerTick: 8, volatilityFilter: true, zeroPages: true });
    const first = await strategy.scan(context(guests));
    expect(first.groups).toEqual([]); // first visit: hashes recorded, nothing stable yet
    fill(guests[0]!, 3, 77);
    const second = await strategy.scan(context(guests));
    expect(names(second.groups)).toEqual(['0:2 1:2']);
    expect(second.metrics).toMatchObject({ volatile_pages: 1, stable_pages: 7, window_pages: 8, full_scans: 2 });
    fill(guests[0]!, 3, 1003); // equal again, but changed since the last visit: volatile once more
    expect(names((await strategy.scan(context(guests))).groups)).toEqual(['0:2 1:2']);
    expect(names((await strategy.scan(context(guests))).groups)).toEqual(['0:2 1:2', '0:3 1:3']);
  });

  it('without the filter, proposes after one visit', async () => {
    const guests = twoGuests(4);
    fill(guests[1]!, 2, 1002);
    const strategy = new IncrementalContentStrategy({ pagesPerTick: 8, volatilityFilter: false, zeroPages: true });
    expect(names((await strategy.scan(context(guests))).groups)).toEqual(['0:2 1:2']);
  });

  it('visits a window per tick, wrapping around all guests; a page joins an earlier stable one (the anchor)', async () => {
    const guests = twoGuests(4);
    fill(guests[1]!, 3, 1000); // g1:3 = g0:0
    const strategy = new IncrementalContentStrategy({ pagesPerTick: 3, volatilityFilter: false, zeroPages: true });
    const windows: string[] = [];
    const groups: string[][] = [];
    for (let tick = 0; tick < 4; tick++) {
      const result: ScanResult = await strategy.scan(context(guests));
      windows.push(`${result.metrics.window_pages}/${result.metrics.full_scans}`);
      groups.push(names(result.groups));
    }
    // Ticks visit g0:0-2 | g0:3 g1:0-1 | g1:2-3 g0:0 (wrap) | g0:1-3.
    expect(windows).toEqual(['3/0', '3/0', '3/1', '3/1']);
    expect(groups).toEqual([[], [], ['0:0 1:3'], []]);
  });

  it('never reads a hole: it is a zero page', async () => {
    const guests = twoGuests(4);
    guests[0]!.pages(1, 1).fill(0);
    guests[1]!.pages(1, 1).fill(0xee); // a hole's bytes, which must not be read
    const residency = [new Uint8Array([1, 1, 1, 1]), new Uint8Array([1, 0, 1, 1])];
    const strategy = new IncrementalContentStrategy({ pagesPerTick: 8, volatilityFilter: false, zeroPages: true });
    const result = await strategy.scan({ ...context(guests), residency });
    expect(names(result.groups)).toEqual(['0:1 1:1']);
    expect(result.groups[0]!.zero).toBe(true);
    expect(result.cost.pagesRead).toBe(7);
  });
});

describe('hybrid', () => {
  /** A stand-in semantic route: "kernel" pages 0-1 of each guest, proposed as pairs. */
  const kernelRoute: KernelRoute = {
    declaredMetrics: {},
    describe: () => 'stand-in',
    kernelPageRanges: () => [{ first: 0, count: 2 }],
    scan: async () => ({
      groups: [0, 1].map((gfn) => ({
        pages: [
          { guest: 0, gfn },
          { guest: 1, gfn },
        ],
      })),
      cost: { pagesRead: 4, bytesHashed: 0, bytesCompared: 8192 },
      metrics: {},
      notes: [],
    }),
  };

  it('leaves kernel pages to the semantic route (never scanned) and the rest to the incremental scan; says where savings come from', async () => {
    const guests = twoGuests(6);
    for (const gfn of [0, 1, 4]) fill(guests[1]!, gfn, 1000 + gfn); // kernel pages 0-1 and data page 4 equal in both
    guests[0]!.pages(5, 1).fill(0);
    guests[1]!.pages(5, 1).fill(0);
    const hybrid = new HybridStrategy({ pagesPerTick: 12, volatilityFilter: false, zeroPages: true, route: 'memory' }, kernelRoute);
    const result = await hybrid.scan(context(guests));
    expect(names(result.groups)).toEqual(['0:0 1:0', '0:1 1:1', '0:4 1:4', '0:5 1:5']);
    expect(result.cost.pagesRead).toBe(4 + 8); // semantic's 4 + content's 8 (the 4 kernel pages are not read by it)
    expect(result.metrics).toMatchObject({ pages_by_semantic: 4, pages_by_content: 2, pages_by_zero: 2, window_pages: 12 });
  });
});
