/**
 * The attribution rule of saved-by-class.ts on crafted classes: a frame of m pages saves m − 1, each saved page in
 * its own class, the keeper (smallest key) never counted, whatever order the ledger lists a frame's pages in; and
 * the overlap between two ledgers counts shared and reclaimed pages alike.
 */
import { describe, expect, it } from 'vitest';
import { pageIndex } from '../hashing/scan-engine.ts';
import { craftedClasses, craftedFile } from '../testing/crafted-page-classes.ts';
import { counterCheck, counterTolerance, disagreements } from './counter-check.ts';
import { PageClasses } from './page-classes.ts';
import { emptySavedByClass, SAVED_CLASSES, savedAlsoBy, savedByClass, savingPages } from './saved-by-class.ts';

const FRAMES = 16;
const classes = [
  craftedClasses('g0', FRAMES, { 1: { kind: 'pagecache', file: 0, index: 0 }, 5: { kind: 'free' }, 6: { kind: 'kernel-text' }, 7: { kind: 'unknown' } }, [
    craftedFile(),
  ]),
  craftedClasses('g1', FRAMES, { 1: { kind: 'pagecache', file: 0, index: 0 }, 5: { kind: 'free' }, 9: { kind: 'module-text', module: 'ext4' } }, [
    craftedFile(),
  ]),
];
const key = pageIndex;

describe('frames saved by page class', () => {
  it('counts every page of a frame but its keeper, in its own class; the classes add up to frames saved', () => {
    const frames = [
      [key(1, 1), key(0, 1)], // page cache in both guests: g1's saves a frame (listed first, still not the keeper)
      [key(1, 5), key(0, 7), key(0, 5), key(0, 2)], // a zero frame: keeper g0:2 (anon), saves g0:5 free, g0:7 other, g1:5 free
      [key(0, 6), key(1, 9)], // kernel text in g0, module text in g1: g1's page saves it
      [key(1, 3)], // a lone survivor saves nothing
    ];
    const byClass = savedByClass(frames, classes);
    expect(byClass).toEqual({ ...emptySavedByClass(), pagecache: 1, free: 2, other: 1, module_text: 1 });
    const saved = frames.reduce((sum, f) => sum + Math.max(0, f.length - 1), 0);
    expect(SAVED_CLASSES.reduce((sum, name) => sum + byClass[name], 0)).toBe(saved);
  });

  it('refuses a saved page the classes do not cover (a bug, never a guess)', () => {
    expect(() => savedByClass([[key(0, 1), key(2, 1)]], classes)).toThrow(/g2:0x1 has no class/);
  });

  it('finds the part of one ledger’s savings another also saves, by sharing or by reclaiming free frames', () => {
    const content = [
      [key(0, 1), key(1, 1)], // saved: g1:1
      [key(0, 2), key(0, 5), key(1, 5)], // saved: g0:5, g1:5
      [key(0, 8), key(1, 8)], // saved: g1:8
    ];
    const reclaimed = [new Uint8Array(FRAMES), new Uint8Array(FRAMES)];
    reclaimed[1]![5] = 1; // the other reclaims g1:5
    const other = savingPages(
      [
        [key(1, 1), key(0, 1)],
        [key(0, 8), key(1, 8)],
      ],
      reclaimed,
      [FRAMES, FRAMES],
    );
    // g1:1 and g1:8 by sharing (same keeper rule), g1:5 by reclaim; g0:5 it neither shares nor reclaims.
    expect(savedAlsoBy(content, other)).toBe(3);
    // A page the other keeps as its frame's keeper saves nothing there: g0:8 is no saving of the other.
    expect(savedAlsoBy([[key(1, 8), key(0, 8)]], savingPages([[key(0, 8), key(1, 9)]], undefined, [FRAMES, FRAMES]))).toBe(0);
  });
});

describe('the classes beside the kernel’s counters', () => {
  /** Crafted classes with counters: 3 buddy-free frames, 2 page-cache, the rest anon. */
  function withCounters(counters: { free: number; file: number; anon: number }): PageClasses {
    const c = craftedClasses('g0', FRAMES, { 0: { kind: 'free' }, 1: { kind: 'free' }, 2: { kind: 'free' }, 3: { kind: 'pagecache' }, 4: { kind: 'shmem' } }, [
      craftedFile(),
    ]);
    const zone = { NR_FREE_PAGES: counters.free };
    const node = {
      NR_FILE_PAGES: counters.file,
      NR_SHMEM: 1,
      NR_FILE_DIRTY: 0,
      NR_WRITEBACK: 0,
      NR_ANON_MAPPED: counters.anon,
      NR_SLAB_RECLAIMABLE_B: 0,
      NR_SLAB_UNRECLAIMABLE_B: 0,
      NR_PAGETABLE: 0,
    };
    return new PageClasses(
      c.guestId,
      c.frames,
      c.kind,
      c.bits,
      c.order,
      c.head,
      c.ref,
      c.fileIndex,
      c.files,
      c.caches,
      c.modules,
      {
        zone,
        node,
        perCpuFreePages: 0,
        freeAreaPages: counters.free,
      },
      c.topology,
    );
  }

  it('agree within max(4, 0.5 %) and say which pair disagrees beyond it', () => {
    const ok = counterCheck(withCounters({ free: 3, file: 2, anon: 11 + 4 }))!;
    expect(ok.free).toMatchObject({ classified: 3, kernel: 3, agrees: true });
    expect(ok.anon).toMatchObject({ classified: 11, kernel: 15, agrees: true });
    expect(disagreements(ok)).toEqual([]);
    const off = counterCheck(withCounters({ free: 3, file: 2, anon: 11 + 5 }))!;
    expect(off.anon.agrees).toBe(false);
    expect(disagreements(off)).toEqual(['anon: classified 11, kernel 16 (NR_ANON_MAPPED)']);
    expect(counterTolerance(10_000)).toBe(50);
  });

  it('give no check where the counters were not read', () => {
    expect(counterCheck(classes[0]!)).toBeUndefined();
  });
});
