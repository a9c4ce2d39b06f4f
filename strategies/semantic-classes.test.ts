/**
 * Sharing by meaning on in-memory guests with crafted page classes (harness/testing/crafted-page-classes.ts):
 * the page-cache key proposes, the ledger's byte comparison decides (a page whose bytes differ is refused, and
 * counted back as the key's mismatch), the strategy reads no page; free frames are reclaimed apart from shared
 * ones, a reclaimed frame no longer free is one reclaim fault, and zero pages shared by meaning are never
 * counted as reclaimed. On real guests: semantic-classes.e2e.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHasher, type PageHasher } from '../harness/hashing/page-hasher.ts';
import type { FileInfo, PageClasses } from '../harness/introspection/page-classes.ts';
import { AccountingLedger, REFUSED_RECLAIMED } from '../harness/sharing/ledger.ts';
import { craftedClasses, craftedFile, type CraftedFrame } from '../harness/testing/crafted-page-classes.ts';
import { fakeImage, fakeKernel } from '../harness/testing/fake-backend.ts';
import { MemoryGuest } from '../harness/testing/memory-guest.ts';
import type { Guest } from '../harness/backends/types.ts';
import { createStrategy } from './registry.ts';
import { SemanticUnionStrategy, type KernelImageRoute } from './semantic-union.ts';
import type { ScanResult, Strategy, StrategyContext, TickPageClasses } from './types.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

const FRAMES = 32;

/** Guests whose every page has its own bytes (guest, gfn) unless a test makes them equal. */
function guests(count = 2): MemoryGuest[] {
  return Array.from({ length: count }, (_, g) => {
    const guest = new MemoryGuest(`g${g}`, FRAMES);
    for (let gfn = 0; gfn < FRAMES; gfn++) guest.fill(gfn, 1000 + g * 100 + gfn);
    return guest;
  });
}

/** Counts every page read through the guests' pages() while `work` runs. */
async function pagesReadDuring<T>(list: MemoryGuest[], work: () => Promise<T>): Promise<{ value: T; reads: number }> {
  let reads = 0;
  const originals = list.map((g) => g.pages.bind(g));
  list.forEach((g, i) => {
    g.pages = (first: number, count: number) => ((reads += count), originals[i]!(first, count));
  });
  try {
    return { value: await work(), reads };
  } finally {
    list.forEach((g, i) => {
      g.pages = originals[i]!;
    });
  }
}

function context(list: readonly Guest[], classes: PageClasses[] | { refused: string }): StrategyContext {
  const pageClasses: TickPageClasses = Array.isArray(classes) ? { guests: classes, cpuMs: 1 } : { refused: classes.refused, cpuMs: 1 };
  return { guests: list, image: fakeImage(), kernel: fakeKernel(), hasher, pageClasses };
}

/** One tick as the tick loop runs it: CoW detection, scan, reclaim, apply, the verdict. */
async function tick(
  strategy: Strategy,
  ledger: AccountingLedger,
  ctx: StrategyContext,
  first = false,
): Promise<{ scan: ScanResult; judged: Record<string, number> }> {
  if (!first) ledger.detectCow();
  const scan = await strategy.scan(ctx);
  if (scan.freeFrames) ledger.reclaimFree(scan.freeFrames);
  const applied = ledger.apply(scan.groups);
  return { scan, judged: strategy.afterApply?.(applied) ?? {} };
}

/** Frames 4…7 of each guest hold pages 0…3 of one file (g1's in reverse order). */
function cacheOf(file: FileInfo, guest: number, extra: Record<number, CraftedFrame> = {}): PageClasses {
  const spec: Record<number, CraftedFrame> = {};
  for (let index = 0; index < 4; index++) spec[guest === 0 ? 4 + index : 7 - index] = { kind: 'pagecache', file: 0, index };
  return craftedClasses(`g${guest}`, FRAMES, { ...spec, ...extra }, [file]);
}

describe('semantic-pagecache', () => {
  it('proposes the frames of one file and offset across guests; the ledger refuses exactly the page whose bytes differ; no page is read', async () => {
    const list = guests();
    // Pages 0, 1 and 3 of the file are byte-equal in both guests, page 2 differs.
    for (const index of [0, 1, 3]) list[1]!.pages(7 - index, 1).set(list[0]!.pages(4 + index, 1));
    const strategy = createStrategy('semantic-pagecache');
    const ledger = new AccountingLedger('semantic-pagecache', list, hasher);
    const classes = [cacheOf(craftedFile(), 0), cacheOf(craftedFile(), 1)];
    const { value: scan, reads } = await pagesReadDuring(list, () => strategy.scan(context(list, classes)));
    expect(reads).toBe(0);
    expect(scan.groups.map((g) => g.pages)).toEqual(
      [0, 1, 2, 3].map((index) => [
        { guest: 0, gfn: 4 + index },
        { guest: 1, gfn: 7 - index },
      ]),
    );
    const applied = ledger.apply(scan.groups);
    expect(applied.refused.flatMap((r) => r.pages)).toEqual(
      expect.arrayContaining([
        { guest: 0, gfn: 6 },
        { guest: 1, gfn: 5 },
      ]),
    );
    expect(applied.refused.flatMap((r) => r.pages)).toHaveLength(2);
    expect(ledger.stats()).toMatchObject({ sharedPages: 6, framesSaved: 3, zeroPagesShared: 0 });
    expect(ledger.isShared({ guest: 0, gfn: 6 })).toBe(false);
    expect(scan.metrics).toMatchObject({ pagecache_frames: 8, pagecache_key_groups: 4, pagecache_key_pages: 8, pagecache_skipped_frames: 0 });
    expect(strategy.afterApply!(applied)).toEqual({ pagecache_key_refused_pages: 2, shmem_key_refused_pages: 0 });
  });

  it('keys disk files by generation, mtime and ctime too; skips dirty and writeback page-cache frames', async () => {
    const list = guests();
    const strategy = createStrategy('semantic-pagecache');
    const base = craftedFile();
    for (const changed of [{ generation: 8 }, { mtime: { sec: base.mtime.sec, nsec: 6 } }, { ctime: { sec: base.ctime.sec + 1, nsec: 5 } }, { ino: 13 }]) {
      const scan = await strategy.scan(context(list, [cacheOf(base, 0), cacheOf(craftedFile(changed), 1)]));
      expect(scan.groups, JSON.stringify(changed)).toEqual([]);
    }
    const scan = await strategy.scan(
      context(list, [
        cacheOf(base, 0, { 4: { kind: 'pagecache', file: 0, index: 0, dirty: true } }),
        cacheOf(base, 1, { 6: { kind: 'pagecache', file: 0, index: 1, writeback: true } }),
      ]),
    );
    // Index 0 is dirty in g0, index 1 under writeback in g1: only indexes 2 and 3 are proposed.
    expect(scan.groups.map((g) => g.pages.map((p) => p.gfn))).toEqual([
      [6, 5],
      [7, 4],
    ]);
    expect(scan.metrics).toMatchObject({ pagecache_skipped_frames: 2, pagecache_key_groups: 2 });
  });

  it('keys shmem without generation and ctime (random and boot-time there), with size and mtime; a dirty shmem frame is proposed', async () => {
    const list = guests();
    const rootfs = (g: number, overrides: Partial<FileInfo> = {}) =>
      craftedFile({
        fsType: 'rootfs',
        deviceName: 'rootfs',
        device: 2,
        ino: 14,
        generation: 1000 + g,
        ctime: { sec: 1_796_171_414 + g, nsec: g },
        ...overrides,
      });
    const shmemOf = (g: number, file: FileInfo) => craftedClasses(`g${g}`, FRAMES, { 9: { kind: 'shmem', file: 0, index: 3, dirty: true } }, [file]);
    const strategy = createStrategy('semantic-pagecache');
    const scan = await strategy.scan(context(list, [shmemOf(0, rootfs(0)), shmemOf(1, rootfs(1))]));
    expect(scan.groups.map((g) => g.pages)).toEqual([
      [
        { guest: 0, gfn: 9 },
        { guest: 1, gfn: 9 },
      ],
    ]);
    expect(scan.metrics).toMatchObject({ shmem_frames: 2, shmem_key_groups: 1, shmem_key_pages: 2, shmem_skipped_frames: 0 });
    for (const changed of [{ size: 1 }, { mtime: { sec: 5, nsec: 0 } }]) {
      expect((await strategy.scan(context(list, [shmemOf(0, rootfs(0)), shmemOf(1, rootfs(1, changed))]))).groups).toEqual([]);
    }
    expect((await createStrategy('semantic-pagecache', { shmem: false }).scan(context(list, [shmemOf(0, rootfs(0)), shmemOf(1, rootfs(1))]))).groups).toEqual(
      [],
    );
  });

  it('proposes nothing, and says why, when the classes were refused', async () => {
    const list = guests();
    const scan = await createStrategy('semantic-pagecache').scan(context(list, { refused: 'guest g1: page classes refused (guest changed): …' }));
    expect(scan).toMatchObject({ groups: [], refused: 'guest g1: page classes refused (guest changed): …' });
  });
});

describe('semantic-free and the ledger’s free-reclaim path', () => {
  const freeAt = (g: number, free: number[], perCpu: number[] = [], extra: Record<number, CraftedFrame> = {}) =>
    craftedClasses(
      `g${g}`,
      FRAMES,
      {
        ...Object.fromEntries(free.map((f) => [f, { kind: 'free' }])),
        ...Object.fromEntries(perCpu.map((f) => [f, { kind: 'free', perCpu: true }])),
        ...extra,
      },
      [craftedFile()],
    );

  it('reclaims the buddy-free frames, counted apart from shared ones, reading no page; per-CPU frames only when asked', async () => {
    const list = guests();
    const strategy = createStrategy('semantic-free');
    const ledger = new AccountingLedger('semantic-free', list, hasher);
    const ctx = context(list, [freeAt(0, [10, 11, 12], [20]), freeAt(1, [10, 13], [21, 22])]);
    const { value: done, reads } = await pagesReadDuring(list, () => tick(strategy, ledger, ctx, true));
    expect(reads).toBe(0);
    expect(done.scan.groups).toEqual([]);
    expect(done.scan.metrics).toEqual({ free_buddy_frames: 5, free_per_cpu_frames: 3, free_proposed_frames: 5 });
    expect(ledger.stats()).toMatchObject({ sharedPages: 0, framesSaved: 0, zeroPagesShared: 0, reclaimedFree: 5, reclaimFaults: 0 });
    expect(ledger.isReclaimed({ guest: 1, gfn: 13 })).toBe(true);
    expect(ledger.isReclaimed({ guest: 0, gfn: 20 })).toBe(false);
    const all = new AccountingLedger('semantic-free', list, hasher);
    await tick(createStrategy('semantic-free', { perCpu: true }), all, ctx, true);
    expect(all.stats().reclaimedFree).toBe(8);
  });

  it('counts one reclaim fault for a frame reclaimed at tick 0 that is no longer free at tick 1; it leaves reclaimed state', async () => {
    const list = guests();
    const strategy = createStrategy('semantic-free');
    const ledger = new AccountingLedger('semantic-free', list, hasher);
    await tick(strategy, ledger, context(list, [freeAt(0, [10, 11]), freeAt(1, [10])]), true);
    expect(ledger.stats()).toMatchObject({ reclaimedFree: 3, reclaimFaults: 0 });
    // g0 allocated frame 11 (now anonymous) and freed frame 15 before tick 1.
    list[0]!.fill(11, 5);
    await tick(strategy, ledger, context(list, [freeAt(0, [10, 15]), freeAt(1, [10])]));
    expect(ledger.stats()).toMatchObject({ reclaimedFree: 3, reclaimFaults: 1, cowFaults: 0, sharedPages: 0 });
    expect(ledger.isReclaimed({ guest: 0, gfn: 11 })).toBe(false);
    expect(ledger.isReclaimed({ guest: 0, gfn: 15 })).toBe(true);
  });

  it('lets every reclaimed frame go, counting no fault, at a tick whose classes were refused', async () => {
    const list = guests();
    const strategy = createStrategy('semantic-free');
    const ledger = new AccountingLedger('semantic-free', list, hasher);
    await tick(strategy, ledger, context(list, [freeAt(0, [10, 11]), freeAt(1, [10])]), true);
    const { scan } = await tick(strategy, ledger, context(list, { refused: 'guest g0: page classes refused (VMCOREINFO): …' }));
    expect(scan.refused).toMatch(/VMCOREINFO/);
    expect(ledger.stats()).toMatchObject({ reclaimedFree: 0, reclaimFaults: 0 });
  });

  it('never counts zero pages shared by meaning as reclaimed, and never shares a reclaimed frame by bytes', async () => {
    const list = guests();
    // Frames 4…7: a file of zeros in both guests; frames 10 and 11 free (and zero too: never touched).
    for (const guest of list) {
      guest.pages(4, 4).fill(0);
      guest.pages(10, 2).fill(0);
    }
    const zeroFile = craftedFile({ size: 4 * 4096 });
    const classes = list.map((_, g) => cacheOf(zeroFile, g, { 10: { kind: 'free' }, 11: { kind: 'free' } }));
    const union = new SemanticUnionStrategy({ route: 'memory', shmem: true, perCpu: false }, kernelImageStandIn());
    const ledger = new AccountingLedger('semantic-union', list, hasher);
    await tick(union, ledger, context(list, classes), true);
    // Four key groups of two zero pages each: four zero frames, each saving one (the key does not merge groups).
    expect(ledger.stats()).toMatchObject({ sharedPages: 8, framesSaved: 4, zeroPagesShared: 8, reclaimedFree: 4 });
    expect(ledger.stats().savedWhere).toEqual({ zero: 4, withinGuest: 0, acrossGuests: 0 });
    // A free frame already in shared state is not reclaimed; a reclaimed frame proposed by bytes is refused.
    const refusedFree = ledger.reclaimFree({ frames: [[4, 10], [10]] });
    expect(refusedFree.refused).toEqual([{ pages: [{ guest: 0, gfn: 4 }], reason: 'free frame already in shared state (saved there)' }]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 8, reclaimedFree: 2, reclaimFaults: 2 });
    const applied = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 10 },
          { guest: 1, gfn: 10 },
        ],
        zero: true,
      },
    ]);
    expect(applied.refused.map((r) => r.reason)).toEqual([REFUSED_RECLAIMED, REFUSED_RECLAIMED]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 8, zeroPagesShared: 8, reclaimedFree: 2 });
  });
});

/** The System.map route of the union, standing in: kernel code is one page, byte-identical (gfn 0). */
function kernelImageStandIn(): KernelImageRoute {
  return {
    declaredMetrics: { kernel_code_pages: { unit: 'pages', method: 'stand-in' } },
    describe: () => 'stand-in kernel image',
    scan: () =>
      Promise.resolve({
        groups: [],
        cost: { pagesRead: 0, bytesHashed: 0, bytesCompared: 0 },
        metrics: { kernel_code_pages: 1 },
        notes: [],
      }),
  };
}

describe('semantic-union', () => {
  it('proposes kernel image, module text and page cache groups and reclaims free frames, in one scan', async () => {
    const list = guests();
    for (const index of [0, 1, 2, 3]) list[1]!.pages(7 - index, 1).set(list[0]!.pages(4 + index, 1));
    list[1]!.pages(20, 2).set(list[0]!.pages(24, 2)); // module text: g0's frames 24, 25 = g1's 20, 21
    const moduleText = (g: number): Record<number, CraftedFrame> =>
      g === 0
        ? { 24: { kind: 'module-text' as const, module: 'virtio_blk', index: 0 }, 25: { kind: 'module-text' as const, module: 'virtio_blk', index: 1 } }
        : { 20: { kind: 'module-text' as const, module: 'virtio_blk', index: 0 }, 21: { kind: 'module-text' as const, module: 'virtio_blk', index: 1 } };
    const classes = list.map((_, g) => cacheOf(craftedFile(), g, { ...moduleText(g), 30: { kind: 'free' } }));
    const union = new SemanticUnionStrategy({ route: 'memory', shmem: true, perCpu: false }, kernelImageStandIn());
    const ledger = new AccountingLedger('semantic-union', list, hasher);
    const { scan, judged } = await tick(union, ledger, context(list, classes), true);
    expect(scan.metrics).toMatchObject({ kernel_code_pages: 1, module_text_key_groups: 2, pagecache_key_groups: 4, free_proposed_frames: 2 });
    expect(judged).toEqual({ module_text_key_refused_pages: 0, pagecache_key_refused_pages: 0, shmem_key_refused_pages: 0 });
    expect(ledger.stats()).toMatchObject({ sharedPages: 12, framesSaved: 6, reclaimedFree: 2 });
    for (const name of Object.keys(scan.metrics)) expect(union.declaredMetrics, name).toHaveProperty(name);
    for (const name of Object.keys(judged)) expect(union.declaredMetrics, name).toHaveProperty(name);
  });

  it('proposes nothing and reclaims nothing when the page classes are refused', async () => {
    const list = guests();
    const union = new SemanticUnionStrategy({ route: 'memory', shmem: true, perCpu: false }, kernelImageStandIn());
    const scan = await union.scan(context(list, { refused: 'guest g0: page classes refused (BTF): …' }));
    expect(scan).toMatchObject({
      groups: [],
      refused: 'guest g0: page classes refused (BTF): …',
      freeFrames: { unknown: 'guest g0: page classes refused (BTF): …' },
    });
  });
});
