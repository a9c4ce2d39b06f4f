/**
 * The enforced ledger with free frames reclaimed for real (enforced-ledger.ts, ZeroBackedFrames): the
 * hypervisor's counters count zero-backed free frames and byte-shared pages alike, and the ledger keeps them
 * apart. The hypervisor here is a stand-in at the Backend seam (SimulatedSharingHypervisor below: frames,
 * handles, shr_pages, freed and used frames, unshare on write, as Xen's mem_sharing keeps them); the real one
 * runs in the Xen test host (xen-backend.xen.test.ts, "free frames reclaimed").
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { FreeReclaimOutcome, Guest, HypervisorCounters, ShareOutcome } from '../backends/types.ts';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { MemoryGuest } from '../testing/memory-guest.ts';
import type { PageRef } from '../vocabulary.ts';
import { EnforcedLedger } from './enforced-ledger.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

/** Xen's sharing state in miniature: each shared gfn is backed by a frame (a handle) with a member count. */
class SimulatedSharingHypervisor {
  private readonly frameOf = new Map<string, number>();
  private readonly members = new Map<number, number>();
  private nextHandle = 1;

  constructor(private readonly guests: readonly Guest[]) {}

  private key(ref: PageRef): string {
    return `${ref.guest}:${ref.gfn}`;
  }

  private merge(refs: PageRef[]): void {
    const handle = this.nextHandle++;
    for (const ref of refs) this.write(ref); // leaves any frame it was in
    for (const ref of refs) this.frameOf.set(this.key(ref), handle);
    this.members.set(handle, refs.length);
  }

  /** A guest write: Xen unshares the gfn. */
  write(ref: PageRef): void {
    const handle = this.frameOf.get(this.key(ref));
    if (handle === undefined) return;
    this.frameOf.delete(this.key(ref));
    this.members.set(handle, this.members.get(handle)! - 1);
  }

  share = async (_guests: readonly Guest[], groups: PageRef[][]): Promise<ShareOutcome> => {
    for (const group of groups) this.merge(group);
    return { shared: groups, failed: [], hypercalls: groups.reduce((sum, g) => sum + 2 * g.length - 1, 0) };
  };

  counters = async (): Promise<HypervisorCounters> => {
    const sharedPagesPerGuest = this.guests.map(() => 0);
    for (const key of this.frameOf.keys()) sharedPagesPerGuest[Number(key.split(':')[0])]!++;
    const live = [...this.members.values()].filter((m) => m > 0);
    return { sharedPagesPerGuest, freedFrames: live.reduce((sum, m) => sum + m - 1, 0), usedFrames: live.length };
  };

  reclaimFree = async (_guests: readonly Guest[], frames: readonly (readonly number[])[]): Promise<FreeReclaimOutcome> => {
    const backed = frames.flatMap((gfns, guest) => gfns.map((gfn) => ({ guest, gfn })));
    if (!backed.length) return { backed, zeroFrame: undefined, failed: [], hypercalls: 0 };
    this.merge(backed);
    return { backed, zeroFrame: BigInt(this.nextHandle - 1), failed: [], hypercalls: 2 * backed.length - 1 };
  };

  sharedGfns = (guest: Guest, gfns: readonly number[]): Uint8Array => {
    const g = this.guests.indexOf(guest);
    return Uint8Array.from(gfns, (gfn) => (this.frameOf.has(this.key({ guest: g, gfn })) ? 1 : 0));
  };
}

function setUp() {
  const guests = [new MemoryGuest('g0', 8), new MemoryGuest('g1', 8)];
  guests[0]!.fill(2, 77); // a free frame with stale bytes: backed by the zero frame all the same
  guests[0]!.fill(5, 5);
  guests[1]!.fill(5, 5); // the one byte-identical pair
  const xen = new SimulatedSharingHypervisor(guests);
  return { guests, xen, ledger: new EnforcedLedger('semantic-union', guests, hasher, xen) };
}

const pair5 = { pages: [0, 1].map((guest) => ({ guest, gfn: 5 })) };

describe('EnforcedLedger: free frames reclaimed for real, kept apart from byte-verified sharing', () => {
  it('subtracts zero-backed frames from shr_pages and the frames saved, and counts their unshares as reclaim faults, not CoW faults', async () => {
    const { guests, xen, ledger } = setUp();
    expect(ledger.reclaimFree).toBeDefined();
    const first = await ledger.reclaimFree!({
      frames: [
        [1, 2, 3],
        [1, 2],
      ],
    });
    expect(first).toMatchObject({ reclaimed: 5, newlyReclaimed: 5, faults: 0 });
    await ledger.apply([pair5]);
    // Xen counts 7 shared gfns and 4 + 1 frames freed; of them, 5 gfns and 4 frames are the zero frame's.
    expect((await xen.counters()).sharedPagesPerGuest).toEqual([4, 3]);
    expect(ledger.stats()).toMatchObject({ sharedPages: 2, framesSaved: 1, framesUsed: 1, reclaimedFree: 5, reclaimFaults: 0, cowFaults: 0 });
    expect(ledger.stats().perGuest.map((g) => g.sharedPages)).toEqual([1, 1]);

    // The guests run: g1 allocates and writes reclaimed gfn 1, g0 writes its shared gfn 5. Two unshares for Xen.
    xen.write({ guest: 1, gfn: 1 });
    xen.write({ guest: 0, gfn: 5 });
    guests[0]!.fill(5, 99);
    const cow = await ledger.detectCow();
    expect(cow.map((event) => event.guest)).toEqual([0]);
    const second = await ledger.reclaimFree!({ frames: [[1, 2, 3], [2]] });
    expect(second).toMatchObject({ reclaimed: 4, newlyReclaimed: 0, faults: 1 });
    await ledger.apply([]);
    // g1's gfn 5 is the lone survivor of its frame: still shared for Xen (shr_pages), no longer saving a frame.
    expect(ledger.stats()).toMatchObject({ cowFaults: 1, reclaimFaults: 1, reclaimedFree: 4, sharedPages: 1, framesSaved: 0 });

    // g1 frees gfn 1 again: it is proposed and backed by the zero frame once more (a second zero frame here).
    await ledger.detectCow();
    const third = await ledger.reclaimFree!({
      frames: [
        [1, 2, 3],
        [1, 2],
      ],
    });
    expect(third).toMatchObject({ reclaimed: 5, newlyReclaimed: 1, faults: 0 });
    await ledger.apply([]);
    expect(ledger.stats()).toMatchObject({ reclaimedFree: 5, reclaimFaults: 1, sharedPages: 1, framesSaved: 0, framesUsed: 1, cowFaults: 1 });
  });

  it('refuses a reclaimed frame as data, and offers no reclaim where the backend cannot back frames by a zero frame', async () => {
    const { guests, xen, ledger } = setUp();
    await ledger.reclaimFree!({ frames: [[5], []] });
    const applied = await ledger.apply([pair5]);
    expect(applied.refused.map((r) => r.reason)).toContain('page is a reclaimed free frame (reclaimFree), not data to compare');
    const plain = new EnforcedLedger('content', guests, hasher, { share: xen.share, counters: xen.counters });
    expect(plain.reclaimFree).toBeUndefined();
    expect(plain.stats().reclaimedFree).toBeUndefined();
  });
});
