/** Content-based grouping on in-memory stand-in guests; real guests: harness/experiment/runner.e2e.test.ts. */
import { beforeAll, describe, expect, it } from 'vitest';
import { ContentStrategy } from './content.ts';
import { MemoryGuest } from '../harness/testing/memory-guest.ts';
import { defaultHasher, type PageHasher } from '../harness/hashing/page-hasher.ts';
import { AccountingLedger } from '../harness/sharing/ledger.ts';
import type { StrategyContext } from './types.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

function context(guests: MemoryGuest[], pageHasher: PageHasher): StrategyContext {
  return { guests, hasher: pageHasher } as unknown as StrategyContext;
}

/** A deliberately useless hash: every page collides. Only the byte compare stands between it and corruption. */
const collidingHasher: PageHasher = {
  name: 'constant (test)',
  hashPages: (pages, out) => out.fill(42n, 0, pages.length / 4096),
  hashPage: () => 42n,
};

describe('content-based strategy', () => {
  it('groups identical pages within and across guests, and counts zero pages apart', async () => {
    const a = new MemoryGuest('g0', 6);
    const b = new MemoryGuest('g1', 6);
    a.fill(0, 1);
    b.fill(3, 1); // same content as a:0, other frame number
    a.fill(1, 2);
    a.fill(2, 2); // duplicate inside one guest
    a.fill(4, 7); // unique
    b.fill(0, 8);
    b.fill(1, 9);
    b.fill(2, 10);
    b.fill(4, 11);
    b.fill(5, 12);
    // zero pages: a:3, a:5
    const result = await new ContentStrategy({ zeroPages: true }).scan(context([a, b], hasher));
    const groups = result.groups.map((g) => ({ zero: g.zero, pages: g.pages.map((p) => `${p.guest}:${p.gfn}`).sort() }));
    expect(groups).toEqual(
      expect.arrayContaining([
        { zero: false, pages: ['0:0', '1:3'] },
        { zero: false, pages: ['0:1', '0:2'] },
        { zero: true, pages: ['0:3', '0:5'] },
      ]),
    );
    expect(groups).toHaveLength(3);
    expect(result.metrics.zero_pages).toBe(2);
    expect(result.cost.pagesRead).toBe(12);
    // Zero pages and pages equal to the previous guest's at the same gfn are confirmed by compare, not hashed.
    expect(result.cost.bytesHashed).toBeLessThanOrEqual(12 * 4096);
  });

  it('leaves zero pages out when asked', async () => {
    const a = new MemoryGuest('g0', 3);
    const result = await new ContentStrategy({ zeroPages: false }).scan(context([a], hasher));
    expect(result.groups).toEqual([]);
  });

  it('never groups pages whose hashes are equal but whose bytes differ', async () => {
    const a = new MemoryGuest('g0', 4);
    const b = new MemoryGuest('g1', 4);
    for (let gfn = 0; gfn < 4; gfn++) {
      a.fill(gfn, gfn + 1);
      b.fill(gfn, gfn + 101);
    }
    b.fill(2, 3); // b:2 equals a:2 — the only real duplicate
    const result = await new ContentStrategy({ zeroPages: true }).scan(context([a, b], collidingHasher));
    expect(result.groups.map((g) => g.pages)).toEqual([
      [
        { guest: 0, gfn: 2 },
        { guest: 1, gfn: 2 },
      ],
    ]);
    // And the ledger, given a group that lies, still refuses it.
    const ledger = new AccountingLedger('content', [a, b], collidingHasher);
    const applied = ledger.apply([
      {
        pages: [
          { guest: 0, gfn: 0 },
          { guest: 1, gfn: 0 },
        ],
      },
    ]);
    expect(applied.pagesShared).toBe(0);
    expect(applied.refused[0]!.reason).toMatch(/bytes differ/);
  });
});

describe('content-based strategy: declared figures', () => {
  it('declares every figure of a scan, with a unit and a method', async () => {
    const strategy = new ContentStrategy({ zeroPages: true });
    const result = await strategy.scan(context([new MemoryGuest('g0', 2)], hasher));
    expect(Object.keys(result.metrics).sort()).toEqual(Object.keys(strategy.declaredMetrics).sort());
    expect(strategy.declaredMetrics.distinct_hashes).toMatchObject({ unit: 'hashes' });
  });
});
