/** Ledger logic on in-memory stand-in guests (exact cases); real-guest CoW detection: runner.e2e.test.ts. */
import { beforeAll, describe, expect, it } from 'vitest';
import { SharingLedger } from './ledger.ts';
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

describe('SharingLedger', () => {
  it('shares byte-identical pages and counts frames saved', () => {
    const [a, b] = twoGuests();
    const ledger = new SharingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      { pages: [{ guest: 0, gfn: 1 }, { guest: 1, gfn: 1 }] },
      { pages: [{ guest: 0, gfn: 2 }, { guest: 1, gfn: 2 }] },
    ]);
    expect(result).toMatchObject({ groupsApplied: 2, pagesShared: 4, refused: [] });
    expect(ledger.stats()).toMatchObject({ sharedPages: 4, framesUsed: 2, framesSaved: 2, cowFaults: 0 });
    expect(ledger.stats().perGuest).toEqual([{ sharedPages: 2, cowFaults: 0 }, { sharedPages: 2, cowFaults: 0 }]);
  });

  it('never shares pages whose bytes differ, and says why', () => {
    const [a, b] = twoGuests();
    b.pages(3, 1)[100]! ^= 1; // one bit differs
    const ledger = new SharingLedger('t', [a, b], hasher);
    const result = ledger.apply([{ pages: [{ guest: 0, gfn: 3 }, { guest: 1, gfn: 3 }] }]);
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
    const ledger = new SharingLedger('t', [a, b, c], hasher);
    const result = ledger.apply([{ pages: [0, 1, 2].map((guest) => ({ guest, gfn: 0 })) }]);
    expect(result.pagesShared).toBe(2);
    expect(result.refused).toEqual([{ pages: [{ guest: 2, gfn: 0 }], reason: 'bytes differ from the group’s first page' }]);
  });

  it('refuses a page listed twice and pages outside memory', () => {
    const [a, b] = twoGuests();
    const ledger = new SharingLedger('t', [a, b], hasher);
    const result = ledger.apply([
      { pages: [{ guest: 0, gfn: 1 }, { guest: 1, gfn: 1 }] },
      { pages: [{ guest: 0, gfn: 1 }, { guest: 1, gfn: 99 }] },
    ]);
    expect(result.refused.map((r) => r.reason).sort()).toEqual(['page is already in another group', 'page is outside guest memory']);
    expect(result.pagesShared).toBe(2);
  });

  it('counts a write to a shared page as one CoW fault for the writer and dissolves a pair', () => {
    const [a, b] = twoGuests();
    const ledger = new SharingLedger('t', [a, b], hasher);
    ledger.apply([
      { pages: [{ guest: 0, gfn: 1 }, { guest: 1, gfn: 1 }] },
      { pages: [{ guest: 0, gfn: 2 }, { guest: 1, gfn: 2 }] },
    ]);
    expect(ledger.detectCow()).toEqual([]);
    b.pages(1, 1)[0]! ^= 0xff;
    expect(ledger.detectCow()).toEqual([{ guest: 1, gfn: 1 }]);
    const stats = ledger.stats();
    expect(stats).toMatchObject({ sharedPages: 2, framesSaved: 1, cowFaults: 1 });
    expect(stats.perGuest[1]!.cowFaults).toBe(1);
    expect(ledger.isShared({ guest: 0, gfn: 1 })).toBe(false); // its partner left: no longer shared
    // The same page written again is not shared any more: no second fault.
    b.pages(1, 1)[0]! ^= 0xff;
    expect(ledger.detectCow()).toEqual([]);
  });

  it('keeps a group of three shared when one member is written', () => {
    const guests = ['g0', 'g1', 'g2'].map((id) => new MemoryGuest(id, 1));
    for (const g of guests) g.fill(0, 9);
    const ledger = new SharingLedger('t', guests, hasher);
    ledger.apply([{ pages: [0, 1, 2].map((guest) => ({ guest, gfn: 0 })) }]);
    guests[2]!.pages(0, 1)[5] = 0;
    expect(ledger.detectCow()).toHaveLength(1);
    expect(ledger.stats()).toMatchObject({ sharedPages: 2, framesSaved: 1 });
  });
});
