/**
 * The class-key proposer (class-keys.ts) tick after tick: when the classes follow on from the ones it proposed
 * last (PageClasses.delta), it slots again only what may have changed — and must propose exactly what a new
 * proposer proposes from the same classes. A key whose frames the ledger holds as one frame is counted but not
 * proposed again.
 */
import { describe, expect, it } from 'vitest';
import type { FileInfo, PageClasses } from '../harness/introspection/page-classes.ts';
import { PageClasses as Classes } from '../harness/introspection/page-classes.ts';
import { REFUSED_BYTES_DIFFER, REFUSED_RECLAIMED } from '../harness/sharing/ledger.ts';
import type { PackedGroup } from '../harness/sharing/packed-group.ts';
import type { ShareGroup } from '../harness/sharing/types.ts';
import { craftedClasses, craftedFile, type CraftedFrame } from '../harness/testing/crafted-page-classes.ts';
import { ClassKeyProposer } from './class-keys.ts';

const FRAMES = 64;

/** The same classes, marked as following on from `since` with these frames classified again. */
function following(next: PageClasses, since: PageClasses, redone: number[]): PageClasses {
  const redo = new Uint8Array(next.frames);
  for (const f of redone) redo[f] = 1;
  const c = next;
  return new Classes(c.guestId, c.frames, c.kind, c.bits, c.order, c.head, c.ref, c.fileIndex, c.files, c.caches, c.modules, c.counters, c.topology, {
    since,
    redo,
    list: Int32Array.from(redone).sort(),
    redone: redone.length,
  });
}

const groupsAsText = (groups: ShareGroup[]) => groups.map((g) => [...(g as PackedGroup).indices].join(',')).sort();

describe('ClassKeyProposer, incremental', () => {
  const fileA = craftedFile({ ino: 12 });
  const fileB = craftedFile({ ino: 13, mapping: 0xffff888000110000n, inode: 0xffff888000210000n });
  const tick0: Record<number, CraftedFrame> = {
    1: { kind: 'pagecache', file: 0, index: 0 },
    2: { kind: 'pagecache', file: 0, index: 1 },
    3: { kind: 'pagecache', file: 1, index: 0 },
    4: { kind: 'shmem', file: 1, index: 5 },
    9: { kind: 'module-text', module: 'ext4', index: 0 },
  };

  it('proposes after a change exactly what a new proposer proposes from the same classes', () => {
    const proposer = new ClassKeyProposer(['module_text', 'pagecache', 'shmem']);
    const first = [craftedClasses('g0', FRAMES, tick0, [fileA, fileB]), craftedClasses('g1', FRAMES, tick0, [fileA, fileB])];
    proposer.propose(first);
    // Tick 1: in g1, frame 2 became anonymous, frame 7 a page of file A (index 1), frame 1 dirty; file B got a
    // new mtime in g0 only (its entry replaced): its frames there key differently and leave their groups.
    const g1 = { ...tick0, 1: { ...tick0[1]!, dirty: true }, 2: { kind: 'anon' as const }, 7: { kind: 'pagecache' as const, file: 0, index: 1 } };
    const fileB2: FileInfo = { ...fileB, mtime: { sec: fileB.mtime.sec + 1, nsec: 0 } };
    const next = [
      following(craftedClasses('g0', FRAMES, tick0, [fileA, fileB2]), first[0]!, []),
      following(craftedClasses('g1', FRAMES, g1, [fileA, fileB]), first[1]!, [1, 2, 7]),
    ];
    // The crafted classes of g1 keep file A's entry as the same object only if it is: it is (fileA).
    const incremental = proposer.propose(next);
    expect(proposer.lastReslotted).toBeLessThan(2 * FRAMES);
    const fresh = new ClassKeyProposer(['module_text', 'pagecache', 'shmem']).propose(next);
    expect(groupsAsText(incremental.groups)).toEqual(groupsAsText(fresh.groups));
    expect(incremental.metrics).toEqual(fresh.metrics);
    // What is left: module text of ext4 and file A's page 1 (g0 frame 2, g1 frame 7); file B differs; page 0 is dirty in g1.
    expect(incremental.metrics).toMatchObject({ module_text_key_groups: 1, pagecache_key_groups: 1, shmem_key_groups: 0, pagecache_skipped_frames: 1 });
  });

  it('slots nothing again when nothing changed, and proposes the same', () => {
    const proposer = new ClassKeyProposer(['pagecache', 'shmem']);
    const first = [craftedClasses('g0', FRAMES, tick0, [fileA, fileB]), craftedClasses('g1', FRAMES, tick0, [fileA, fileB])];
    const a = proposer.propose(first);
    const b = proposer.propose(first.map((c) => following(craftedClasses(c.guestId, FRAMES, tick0, c.files), c, [])));
    expect(proposer.lastReslotted).toBe(0);
    expect(groupsAsText(b.groups)).toEqual(groupsAsText(a.groups));
  });

  it('does not propose a key whose frames the ledger holds as one frame, but counts it', () => {
    const proposer = new ClassKeyProposer(['pagecache']);
    const classes = [craftedClasses('g0', FRAMES, tick0, [fileA, fileB]), craftedClasses('g1', FRAMES, tick0, [fileA, fileB])];
    // Frame 1 of both guests is on ledger frame 5; frame 2 of g0 on frame 6 and of g1 on none.
    const frameIds = [0, 1].map((guest) => Uint32Array.from({ length: FRAMES }, (_, gfn) => (gfn === 1 ? 5 : gfn === 2 && guest === 0 ? 6 : 0)));
    const { groups, metrics } = proposer.propose(classes, frameIds);
    expect(metrics).toMatchObject({ pagecache_key_groups: 3, pagecache_key_pages: 6, pagecache_key_proposed_pages: 4 });
    expect(groupsAsText(groups)).not.toContain(`1,${2 ** 24 + 1}`);
    expect(groupsAsText(groups)).toContain(`2,${2 ** 24 + 2}`);
  });

  it('holds back a key the ledger refused for its bytes until a frame of it is classified again or 16 ticks pass; shmem keys never', () => {
    const proposer = new ClassKeyProposer(['module_text', 'pagecache', 'shmem']);
    const unchanged = (since: PageClasses[], redone: number[][] = []) =>
      since.map((c, g) => following(craftedClasses(c.guestId, FRAMES, tick0, c.files), c, redone[g] ?? []));
    let classes = [craftedClasses('g0', FRAMES, tick0, [fileA, fileB]), craftedClasses('g1', FRAMES, tick0, [fileA, fileB])];
    const first = proposer.propose(classes);
    const all = groupsAsText(first.groups);
    expect(all).toHaveLength(5); // page cache A0, A1, B0; shmem B5; module text ext4 0
    const page = (gfn: number) => `${gfn},${2 ** 24 + gfn}`;
    // g1's A0 (frame 1), shmem B5 (frame 4) and module text (frame 9) differ in bytes; A1 (frame 2) was refused for another reason.
    proposer.judge({
      groupsApplied: 0,
      pagesShared: 0,
      bytesCompared: 0,
      refused: [
        { pages: [1, 4, 9].map((gfn) => ({ guest: 1, gfn })), reason: REFUSED_BYTES_DIFFER },
        { pages: [{ guest: 1, gfn: 2 }], reason: REFUSED_RECLAIMED },
      ],
    });
    classes = unchanged(classes);
    const second = proposer.propose(classes);
    expect(groupsAsText(second.groups)).toEqual([page(2), page(3), page(4)].sort());
    expect(second.metrics).toMatchObject({ pagecache_key_held_back_pages: 2, module_text_key_held_back_pages: 2, shmem_key_held_back_pages: 0 });
    expect(second.metrics).toMatchObject({ pagecache_key_groups: 3, pagecache_key_pages: 6, module_text_key_groups: 1 });
    // Frame 1 of g0 classified again (same class): its key is proposed again; the module text stays held back.
    classes = unchanged(classes, [[1], []]);
    expect(groupsAsText(proposer.propose(classes).groups)).toEqual([page(1), page(2), page(3), page(4)].sort());
    // The module text comes back 16 ticks after it was refused (tick 1), at tick 17.
    const proposedAt: number[] = [];
    for (let tick = 4; tick <= 18; tick++) {
      classes = unchanged(classes);
      if (groupsAsText(proposer.propose(classes).groups).includes(page(9))) proposedAt.push(tick);
    }
    expect(proposedAt).toEqual([17, 18]);
  });

  it('leaves out the frames of a file being written until it holds still 4 classifications, walking them only when that changes', () => {
    const proposer = new ClassKeyProposer(['shmem']);
    // A shmem file of 8 pages in both guests (a journal on tmpfs), written at classifications 2, 3 and 5, then left alone.
    const spec: Record<number, CraftedFrame> = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [10 + i, { kind: 'shmem' as const, file: 0, index: i }]));
    const writtenAt = [2, 3, 5];
    let file = craftedFile({ ino: 40, fsType: 'tmpfs', mtime: { sec: 1_700_000_000, nsec: 0 } });
    let last: PageClasses[] | undefined;
    const seen: { groups: number; skipped: number; reslotted: number; slots: number }[] = [];
    for (let sequence = 1; sequence <= 11; sequence++) {
      // As the classifier does: a new entry, stamped, when the file's facts changed; the same object otherwise.
      if (writtenAt.includes(sequence)) file = { ...file, mtime: { sec: file.mtime.sec + 1, nsec: 0 }, changedAt: sequence };
      const made = [craftedClasses('g0', FRAMES, spec, [file]), craftedClasses('g1', FRAMES, spec, [file])];
      for (const c of made) c.sequence = sequence;
      const classes = last ? made.map((c, g) => following(c, last![g]!, [])) : made;
      for (const c of classes) c.sequence = sequence;
      const { metrics } = proposer.propose(classes);
      expect(metrics.shmem_frames).toBe(16);
      seen.push({ groups: metrics.shmem_key_groups!, skipped: metrics.shmem_skipped_frames!, reslotted: proposer.lastReslotted, slots: proposer.slotsMade });
      // A new proposer leaves out what this one does.
      expect(new ClassKeyProposer(['shmem']).propose(classes).metrics).toEqual(metrics);
      last = classes;
    }
    // 1: keyed (8 keys of 2 frames). 2–8: unsteady (written at 2, 3, 5; 5 + 4 = 9), left out, walked at 2 only.
    // 9: steady again, keyed (walked once); after that nothing to do.
    expect(seen.map((t) => t.groups)).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8]);
    expect(seen.map((t) => t.skipped)).toEqual([0, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0]);
    expect(seen.map((t) => t.reslotted)).toEqual([2 * FRAMES, 16, 0, 0, 0, 0, 0, 0, 16, 0, 0]);
    // Slots no frame holds are given back and used again: never more than the file's 8 keys.
    expect(Math.max(...seen.map((t) => t.slots))).toBeLessThanOrEqual(8);
  });

  it('re-keys a file whose entry changed without a stamp (another file at its address_space), at once', () => {
    const proposer = new ClassKeyProposer(['shmem']);
    const spec: Record<number, CraftedFrame> = { 10: { kind: 'shmem', file: 0, index: 0 } };
    const first = [0, 1].map((g) => craftedClasses(`g${g}`, FRAMES, spec, [craftedFile({ ino: 40, fsType: 'tmpfs' })]));
    expect(proposer.propose(first).metrics).toMatchObject({ shmem_key_groups: 1 });
    const other = craftedFile({ ino: 41, fsType: 'tmpfs' });
    const next = first.map((c) => following(craftedClasses(c.guestId, FRAMES, spec, [other]), c, []));
    expect(proposer.propose(next).metrics).toMatchObject({ shmem_key_groups: 1, shmem_skipped_frames: 0 });
    expect(proposer.lastReslotted).toBe(2);
  });
});
