/** Ledger logic on in-memory stand-in guests (exact cases); real-guest CoW detection: runner.e2e.test.ts. */
import { beforeAll, describe, expect, it } from 'vitest';
import { AccountingLedger } from './ledger.ts';
import { PackedGroup } from './packed-group.ts';
import { pageIndex } from '../hashing/scan-engine.ts';
import { EnforcedLedger } from './enforced-ledger.ts';
import { MemoryGuest } from '../testing/memory-guest.ts';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

function twoGuests() {
  const a = new MemoryGuest('g0', 8);
  const b = new MemoryGuest('g1', 8);
  for (let gfn = 0; gfn < 8; gfn++) {
    a.fill(gfn, gfn);
    b.fill(gfn, gfn); // identical to a, page by page
  }
  return [a, b] as const;
}

describe('AccountingLedger', () => {
  it('splits frames saved by where the sharing lies: zero frames, within one guest, across guests (a crafted known answer)', () => {
    const guests = [new MemoryGuest('g0', 16), new MemoryGuest('g1', 16), new MemoryGuest('g2', 16)];
    guests.forEach((guest, g) => {
      for (let gfn = 0; gfn < 16; gfn++) guest.fill(gfn, 100 + g * 16 + gfn); // every page its own bytes…
    });
    for (const guest of guests) guest.pages(1, 1).fill(0); // …but gfn 1 is a zero page in all three,
    guests[0]!.fill(6, 7); // g0's gfns 5 and 6 hold one content (within g0: 1 saved),
    guests[0]!.fill(5, 7);
    guests[1]!.fill(7, 7); // and g1's gfns 7 and 8 hold it too (across g0 and g1: 1, within g1: 1),
    guests[1]!.fill(8, 7);
    guests[2]!.fill(9, 42); // and g2's gfns 9, 10, 11 another (within g2: 2).
    guests[2]!.fill(10, 42);
    guests[2]!.fill(11, 42);
    const ledger = new AccountingLedger('t', guests, hasher);
    ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
          { guest: 2, gfn: 1 },
        ],
        zero: true,
      },
      {
        pages: [
          { guest: 0, gfn: 5 },
          { guest: 0, gfn: 6 },
          { guest: 1, gfn: 7 },
          { guest: 1, gfn: 8 },
        ],
      },
      {
        pages: [
          { guest: 2, gfn: 9 },
          { guest: 2, gfn: 10 },
          { guest: 2, gfn: 11 },
        ],
      },
    ]);
    const stats = ledger.stats();
    // zero: 3 pages on one frame → 2; the 4-page frame over 2 guests → 1 across, 2 within; the 3-page frame in g2 → 2 within.
    expect(stats.savedWhere).toEqual({ zero: 2, withinGuest: 4, acrossGuests: 1 });
    expect(stats.savedWhere!.zero + stats.savedWhere!.withinGuest + stats.savedWhere!.acrossGuests).toBe(stats.framesSaved);
  });

  it('shares byte-identical pages and counts frames saved', () => {
    const [a, b] = twoGuests();
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
        ],
      },
      {
        pages: [
          { guest: 0, gfn: 2 },
          { guest: 1, gfn: 2 },
        ],
      },
    ]);
    expect(result).toMatchObject({ groupsApplied: 2, pagesShared: 4, refused: [] });
    expect(ledger.stats()).toMatchObject({ sharedPages: 4, framesUsed: 2, framesSaved: 2, cowFaults: 0 });
    expect(ledger.stats().perGuest).toEqual([
      { sharedPages: 2, cowFaults: 0 },
      { sharedPages: 2, cowFaults: 0 },
    ]);
  });

  it('takes packed groups (a content scan’s) as it takes page lists, without reading their PageRefs', () => {
    const [a, b] = twoGuests();
    b.pages(3, 1)[100]! ^= 1;
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const packed = new PackedGroup(new Uint32Array([pageIndex(0, 1), pageIndex(1, 1)]), false);
    const differs = new PackedGroup(new Uint32Array([pageIndex(0, 3), pageIndex(1, 3)]), false);
    const outside = new PackedGroup(new Uint32Array([pageIndex(0, 2), pageIndex(1, 2), pageIndex(1, 9)]), false);
    const result = ledger.apply([packed, differs, outside]);
    expect(result).toMatchObject({ groupsApplied: 2, pagesShared: 4 });
    expect(result.refused.map((r) => r.reason).sort()).toEqual([
      'bytes differ from the group’s first page',
      'no other page of the group has the same bytes',
      'page is outside guest memory',
    ]);
    expect(result.refused.find((r) => r.reason === 'page is outside guest memory')!.pages).toEqual([{ guest: 1, gfn: 9 }]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 4, framesUsed: 2 });
  });

  it('never shares pages whose bytes differ, and says why', () => {
    const [a, b] = twoGuests();
    b.pages(3, 1)[100]! ^= 1; // one bit differs
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 3 },
          { guest: 1, gfn: 3 },
        ],
      },
    ]);
    expect(result.groupsApplied).toBe(0);
    expect(result.refused.map((r) => r.reason)).toContain('bytes differ from the group’s first page');
    expect(ledger.stats().sharedPages).toBe(0);
  });

  it('keeps the identical members of a group and refuses only the differing one', () => {
    const a = new MemoryGuest('g0', 2);
    const b = new MemoryGuest('g1', 2);
    const c = new MemoryGuest('g2', 2);
    a.fill(0, 5);
    b.fill(0, 5);
    c.fill(0, 6);
    const ledger = new AccountingLedger('t', [a, b, c], hasher);
    const result = ledger.apply([{ pages: [0, 1, 2].map((guest) => ({ guest, gfn: 0 })) }]);
    expect(result.pagesShared).toBe(2);
    expect(result.refused).toEqual([{ pages: [{ guest: 2, gfn: 0 }], reason: 'bytes differ from the group’s first page' }]);
  });

  it('refuses a page listed in two groups and pages outside memory', () => {
    const [a, b] = twoGuests();
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
        ],
      },
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 99 },
        ],
      },
    ]);
    expect(result.refused.map((r) => r.reason).sort()).toEqual(['page is already in another group', 'page is outside guest memory']);
    expect(result.pagesShared).toBe(2);
  });

  it('refuses a group that lists the same page twice (no frame saved from nothing)', () => {
    const [a, b] = twoGuests();
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 0, gfn: 1 },
        ],
      },
    ]);
    expect(result.groupsApplied).toBe(0);
    expect(result.refused[0]!.reason).toMatch(/lists g0:0x1 twice/);
    expect(ledger.stats()).toMatchObject({ sharedPages: 0, framesSaved: 0 });
  });

  it('decides itself whether a group is all zeros (a strategy’s zero flag is not trusted)', () => {
    const [a, b] = twoGuests(); // page 0 of both is filled with a non-zero pattern; page 0 of each is equal
    const ledger = new AccountingLedger('t', [a, b], hasher);
    ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
        ],
        zero: true,
      },
    ]);
    expect(ledger.stats().zeroPagesShared).toBe(0);
    a.pages(2, 1).fill(0);
    b.pages(2, 1).fill(0);
    ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 2 },
          { guest: 1, gfn: 2 },
        ],
        zero: false,
      },
    ]);
    expect(ledger.stats().zeroPagesShared).toBe(2);
  });

  it('counts every write to a page in shared state, the survivor of a pair included, however writes fall into ticks', () => {
    const pairWrittenInOneTick = () => {
      const [a, b] = twoGuests();
      const ledger = new AccountingLedger('t', [a, b], hasher);
      ledger.apply([
        {
          pages: [
            { guest: 0, gfn: 1 },
            { guest: 1, gfn: 1 },
          ],
        },
      ]);
      a.pages(1, 1)[0]! ^= 0xff;
      b.pages(1, 1)[0]! ^= 0xff;
      ledger.detectCow();
      return ledger.stats();
    };
    const pairWrittenInTwoTicks = () => {
      const [a, b] = twoGuests();
      const ledger = new AccountingLedger('t', [a, b], hasher);
      ledger.apply([
        {
          pages: [
            { guest: 0, gfn: 1 },
            { guest: 1, gfn: 1 },
          ],
        },
      ]);
      a.pages(1, 1)[0]! ^= 0xff;
      expect(ledger.detectCow()).toEqual([{ guest: 0, gfn: 1 }]);
      // The survivor stays write-protected on its frame (as in Xen): still in shared state, saving nothing.
      expect(ledger.isShared({ guest: 1, gfn: 1 })).toBe(true);
      expect(ledger.stats()).toMatchObject({ sharedPages: 1, framesSaved: 0, cowFaults: 1, cowCopies: 1 });
      ledger.apply([]); // a later scan that proposes nothing does not unshare it
      b.pages(1, 1)[0]! ^= 0xff;
      expect(ledger.detectCow()).toEqual([{ guest: 1, gfn: 1 }]);
      return ledger.stats();
    };
    for (const stats of [pairWrittenInOneTick(), pairWrittenInTwoTicks()]) {
      expect(stats).toMatchObject({ sharedPages: 0, framesSaved: 0, cowFaults: 2, cowCopies: 1 });
      expect(stats.perGuest.map((g) => g.cowFaults)).toEqual([1, 1]);
    }
  });

  it('a page written once counts once, even when written again later', () => {
    const [a, b] = twoGuests();
    const ledger = new AccountingLedger('t', [a, b], hasher);
    ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
        ],
      },
      {
        pages: [
          { guest: 0, gfn: 2 },
          { guest: 1, gfn: 2 },
        ],
      },
    ]);
    b.pages(1, 1)[0]! ^= 0xff;
    expect(ledger.detectCow()).toEqual([{ guest: 1, gfn: 1 }]);
    b.pages(1, 1)[0]! ^= 0x0f;
    expect(ledger.detectCow()).toEqual([]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 3, framesSaved: 1, cowFaults: 1 });
  });

  it('keeps a group of three shared when one member is written', () => {
    const guests = ['g0', 'g1', 'g2'].map((id) => new MemoryGuest(id, 1));
    for (const g of guests) g.fill(0, 9);
    const ledger = new AccountingLedger('t', guests, hasher);
    ledger.apply([{ pages: [0, 1, 2].map((guest) => ({ guest, gfn: 0 })) }]);
    guests[2]!.pages(0, 1)[5] = 0;
    expect(ledger.detectCow()).toHaveLength(1);
    expect(ledger.stats()).toMatchObject({ sharedPages: 2, framesSaved: 1 });
  });

  it('joins a new proposal to the frame its pages are already on, and re-proposals share nothing new', () => {
    const guests = ['g0', 'g1', 'g2'].map((id) => new MemoryGuest(id, 1));
    for (const g of guests) g.fill(0, 4);
    const ledger = new AccountingLedger('t', guests, hasher);
    expect(ledger.apply([{ pages: [0, 1].map((guest) => ({ guest, gfn: 0 })) }]).pagesShared).toBe(2);
    const again = ledger.apply([{ pages: [0, 1].map((guest) => ({ guest, gfn: 0 })) }]);
    expect(again).toMatchObject({ pagesShared: 0, bytesCompared: 0 });
    expect(
      ledger.apply([
        {
          pages: [
            { guest: 1, gfn: 0 },
            { guest: 2, gfn: 0 },
          ],
        },
      ]).pagesShared,
    ).toBe(1);
    expect(ledger.stats()).toMatchObject({ sharedPages: 3, framesUsed: 1, framesSaved: 2 });
  });

  it('reads no page to re-apply a group already on one frame, and still compares a member that was written', () => {
    /** Counts the pages read through the guest seam. */
    class CountingGuest extends MemoryGuest {
      reads = 0;
      override pages(firstGfn: number, count: number): Buffer {
        this.reads += count;
        return super.pages(firstGfn, count);
      }
    }
    const guests = ['g0', 'g1', 'g2'].map((id) => new CountingGuest(id, 2));
    for (const g of guests) g.fill(0, 6);
    const group = () =>
      new PackedGroup(
        Uint32Array.from([0, 1, 2], (guest) => pageIndex(guest, 0)),
        false,
      );
    const ledger = new AccountingLedger('t', guests, hasher);
    expect(ledger.apply([group()]).pagesShared).toBe(3);
    ledger.detectCow();
    const reads = () => guests.reduce((sum, g) => sum + g.reads, 0);
    const before = reads();
    expect(ledger.apply([group()])).toMatchObject({ pagesShared: 0, bytesCompared: 0, refused: [] });
    expect(reads()).toBe(before);
    // g1 writes its page: it leaves the frame, and its re-proposal is compared and refused (bytes differ).
    guests[1]!.pages(0, 1)[100]! ^= 1;
    expect(ledger.detectCow()).toEqual([{ guest: 1, gfn: 0 }]);
    const again = ledger.apply([group()]);
    expect(again.bytesCompared).toBe(4096);
    expect(again.refused).toEqual([{ pages: [{ guest: 1, gfn: 0 }], reason: 'bytes differ from the group’s first page' }]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 2, framesSaved: 1 });
  });

  it('bills the fingerprints of the frames it makes (hash, zero test) to the instrument, and still detects their writes', () => {
    const pages = 2_000;
    const guests = ['g0', 'g1'].map((id) => new MemoryGuest(id, pages));
    for (const g of guests) for (let gfn = 0; gfn < pages; gfn++) g.fill(gfn, 1 + (gfn % 250));
    const groups = () => Array.from({ length: pages }, (_, gfn) => ({ pages: [0, 1].map((guest) => ({ guest, gfn })) }));
    const ledger = new AccountingLedger('t', guests, hasher);
    expect(ledger.apply(groups()).pagesShared).toBe(2 * pages);
    const made = ledger.applyInstrumentCpuMs();
    expect(made).toBeGreaterThan(0);
    // Re-applied on their frames: nothing made, nothing fingerprinted.
    expect(ledger.apply(groups()).pagesShared).toBe(0);
    expect(ledger.applyInstrumentCpuMs()).toBeLessThan(made / 10);
    // The fingerprint taken at the end of apply is the bytes as shared: a write after it is a CoW fault.
    guests[0]!.pages(1_234, 1)[7]! ^= 1;
    expect(ledger.detectCow()).toEqual([{ guest: 0, gfn: 1_234 }]);
  });

  it('still refuses a page listed twice or in two groups after 70,000 groups (its marks are reused, never stale)', () => {
    const [a, b] = twoGuests();
    const ledger = new AccountingLedger('t', [a, b], hasher);
    const pair = (gfn: number) => new PackedGroup(Uint32Array.of(pageIndex(0, gfn), pageIndex(1, gfn)), false);
    for (let i = 0; i < 70_000; i++) ledger.apply([pair(i % 8)]);
    expect(ledger.apply([new PackedGroup(Uint32Array.of(pageIndex(0, 3), pageIndex(0, 3)), false)]).refused[0]!.reason).toMatch(/twice/);
    const twice = ledger.apply([pair(2), pair(2)]);
    expect(twice.refused.map((r) => r.reason)).toEqual(['page is already in another group', 'page is already in another group']);
    expect(ledger.stats()).toMatchObject({ sharedPages: 16, framesSaved: 8 });
  });

  it('counts host frames saved only for pages the host really backs', () => {
    const guests = ['g0', 'g1', 'g2'].map((id) => new MemoryGuest(id, 2));
    const ledger = new AccountingLedger('t', guests, hasher); // all pages zero
    ledger.apply([
      {
        pages: [0, 1, 2].flatMap((guest) => [
          { guest, gfn: 0 },
          { guest, gfn: 1 },
        ]),
      },
    ]);
    expect(ledger.stats().hostFramesSaved).toBeUndefined();
    ledger.setHostResidency([Uint8Array.of(1, 0), Uint8Array.of(0, 0), Uint8Array.of(1, 1)]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 6, framesSaved: 5, zeroPagesShared: 6, hostFramesSaved: 2 });
  });
});

describe('ledgers declare their own figures', () => {
  it('declares every figure extraMetrics() gives, the Xen ledger’s hypercalls_total included', async () => {
    const [a, b] = twoGuests();
    const enforcer = {
      share: () => Promise.resolve({ shared: [], failed: [], hypercalls: 3 }),
      counters: () => Promise.resolve({ sharedPagesPerGuest: [0, 0], freedFrames: 0, usedFrames: 0 }),
    };
    const enforced = new EnforcedLedger('t', [a, b], hasher, enforcer);
    await enforced.apply([
      {
        pages: [
          { guest: 0, gfn: 1 },
          { guest: 1, gfn: 1 },
        ],
      },
    ]);
    expect(enforced.extraMetrics()).toEqual({ hypercalls_total: 3 });
    expect(enforced.declaredMetrics.hypercalls_total).toMatchObject({ unit: 'hypercalls' });
    for (const ledger of [enforced, new AccountingLedger('t', [a, b], hasher)]) {
      expect(Object.keys(ledger.extraMetrics()).filter((name) => !(name in ledger.declaredMetrics))).toEqual([]);
    }
  });
});
