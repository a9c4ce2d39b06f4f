/**
 * The free-frame proposal tick after tick (free-frames.ts) and the ledger's reclaim of it: where the classes
 * follow on, the tracker looks only at the frames classified again and the ledger only at those and at the
 * pages that left shared state — and both must end where the whole set, proposed and reclaimed from nothing,
 * ends: the same reclaimed frames, counts and reclaim faults, tick by tick, over random changes with pages
 * shared, written and freed in between.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHasher, type PageHasher } from '../harness/hashing/page-hasher.ts';
import { PageClasses } from '../harness/introspection/page-classes.ts';
import { AccountingLedger } from '../harness/sharing/ledger.ts';
import { craftedClasses, type CraftedFrame } from '../harness/testing/crafted-page-classes.ts';
import { MemoryGuest } from '../harness/testing/memory-guest.ts';
import { FreeFrameTracker } from './free-frames.ts';

let hasher: PageHasher;
beforeAll(async () => {
  hasher = await defaultHasher();
});

const FRAMES = 256;

/** A small deterministic generator (the same sequence on every run). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/** The classes `next`, marked as following on from `since` with the frames in `redone` classified again. */
function following(next: PageClasses, since: PageClasses, redone: readonly number[]): PageClasses {
  const redo = new Uint8Array(next.frames);
  for (const f of redone) redo[f] = 1;
  const list = Int32Array.from(redone).sort();
  const c = next;
  return new PageClasses(c.guestId, c.frames, c.kind, c.bits, c.order, c.head, c.ref, c.fileIndex, c.files, c.caches, c.modules, c.counters, c.topology, {
    since,
    redo,
    list,
    redone: list.length,
  });
}

describe('FreeFrameTracker and the ledger, incremental', () => {
  for (const perCpu of [false, true]) {
    it(`ends every tick where proposing and reclaiming the whole set ends (perCpu ${perCpu})`, () => {
      const next = random(perCpu ? 7 : 3);
      const guests = [0, 1].map((g) => {
        const guest = new MemoryGuest(`g${g}`, FRAMES);
        for (let gfn = 0; gfn < FRAMES; gfn++) guest.fill(gfn, gfn % 17);
        return guest;
      });
      const incremental = new AccountingLedger('incremental', guests, hasher);
      const whole = new AccountingLedger('whole', guests, hasher);
      const tracker = new FreeFrameTracker(perCpu);
      let specs = guests.map(() => ({}) as Record<number, CraftedFrame>);
      let last: PageClasses[] | undefined;
      let followed = 0;
      for (let tick = 0; tick < 12; tick++) {
        // Change some frames' classes (free, per-CPU free, anonymous), and say which were classified again.
        const redone = guests.map(() => new Set<number>());
        specs = specs.map((spec, g) => {
          const changed = { ...spec };
          const changes = tick === 0 ? FRAMES : 1 + Math.floor(next() * 40);
          for (let i = 0; i < changes; i++) {
            const frame = tick === 0 ? i : Math.floor(next() * FRAMES);
            const roll = next();
            if (roll < 0.5) changed[frame] = { kind: 'free' };
            else if (roll < 0.6) changed[frame] = { kind: 'free', perCpu: true };
            else delete changed[frame];
            redone[g]!.add(frame);
          }
          // A frame classified again with no change (a superset of the changes is what the classifier gives).
          redone[g]!.add(Math.floor(next() * FRAMES));
          return changed;
        });
        const fresh = guests.map((guest, g) => craftedClasses(guest.id, FRAMES, specs[g]!));
        const classes = last && tick % 5 !== 3 ? fresh.map((c, g) => following(c, last![g]!, [...redone[g]!])) : fresh;
        if (classes[0]!.delta) followed++;
        last = classes;
        // Pages written since the last tick, shared ones mostly: they leave their frame, and one the classes now
        // find free (not classified again: its struct page had changed before) may be reclaimed now.
        const sharedNow = [0, 1].flatMap((guest) => Array.from({ length: FRAMES }, (_, gfn) => ({ guest, gfn })).filter((ref) => whole.isShared(ref)));
        for (let w = 0; w < 10; w++) {
          const ref =
            w < 8 && sharedNow.length ? sharedNow[Math.floor(next() * sharedNow.length)]! : { guest: Math.floor(next() * 2), gfn: Math.floor(next() * FRAMES) };
          guests[ref.guest]!.fill(ref.gfn, 1000 + tick * 10 + w);
        }
        if (tick > 0) {
          incremental.detectCow();
          whole.detectCow();
        }
        const free = tracker.propose(classes);
        const again = new FreeFrameTracker(perCpu).propose(classes);
        expect({ buddy: free.buddy, perCpu: free.perCpuFrames, proposed: free.proposed }, `tick ${tick}`).toEqual({
          buddy: again.buddy,
          perCpu: again.perCpuFrames,
          proposed: again.proposed,
        });
        if (!('frames' in free.proposal) || !('frames' in again.proposal)) throw new Error('a proposal with no frames');
        expect(
          free.proposal.frames.map((f) => Array.from(f)),
          `tick ${tick}`,
        ).toEqual(again.proposal.frames.map((f) => Array.from(f)));
        incremental.reclaimFree(free.proposal);
        whole.reclaimFree({ frames: again.proposal.frames });
        // Pages of equal bytes shared (some free, proposed: refused by apply as reclaimed, or kept shared).
        const groups = Array.from({ length: 40 }, () => {
          const gfn = Math.floor(next() * (FRAMES - 17));
          return { pages: [0, 1].map((guest) => ({ guest, gfn })) };
        });
        incremental.apply(groups);
        whole.apply(groups);
        const a = incremental.stats();
        const b = whole.stats();
        expect({ reclaimed: a.reclaimedFree, faults: a.reclaimFaults, shared: a.sharedPages }, `tick ${tick}`).toEqual({
          reclaimed: b.reclaimedFree,
          faults: b.reclaimFaults,
          shared: b.sharedPages,
        });
        expect(incremental.reclaimedFrames(), `tick ${tick}`).toEqual(whole.reclaimedFrames());
      }
      // Most ticks followed on (the incremental path ran), some started again.
      expect(followed).toBeGreaterThan(6);
      expect(incremental.stats().reclaimFaults).toBeGreaterThan(0);
    });
  }

  it('refuses to list a proposal after the next tick replaced it', () => {
    const tracker = new FreeFrameTracker(false);
    const first = tracker.propose([craftedClasses('g0', 8, { 1: { kind: 'free' } })]).proposal;
    tracker.propose([craftedClasses('g0', 8, { 2: { kind: 'free' } })]);
    expect(() => ('frames' in first ? first.frames : undefined)).toThrow(/replaced/);
  });
});
