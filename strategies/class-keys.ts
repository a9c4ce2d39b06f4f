/**
 * Sharing by meaning: groups of guest frames that hold the same thing by what the guest kernel says they are
 * (harness/introspection/page-classes.ts), one frame per guest per key — never by reading the pages. The key
 * proposes; the ledger's byte comparison decides (harness/sharing/ledger.ts apply), and what it refused is
 * counted back per key kind (judge), so that how often a key is wrong is measured, not assumed.
 *
 * Keys:
 * - page cache of a disk file system: (file system, s_id, s_dev, inode number, generation, mtime, ctime, page
 *   index). Identical disks give identical inode numbers; generation, mtime and ctime tell a file rewritten or
 *   an inode number reused in one guest (measured on real guests, /work/shared/notes/FACTS.md: same super block,
 *   inode and index alone paired frames whose bytes differ in 22% of pairs; with generation, mtime and ctime none).
 *   Dirty and writeback frames are skipped: their bytes are not the file's on disk, and will change.
 * - shmem (tmpfs, the initramfs rootfs, SysV shm): (file system, s_id, s_dev, inode number, size, mtime, page
 *   index). Measured on the busybox guests: a shmem inode's generation is random per boot (shmem_get_inode draws
 *   it) and its ctime is the time it was made in this boot (the rootfs is unpacked at boot), so neither ever
 *   matches across guests; mtime is the cpio's for unpacked files and moves on every write. Every shmem page is
 *   PG_dirty (it has no backing store: the flag says nothing), so only writeback frames are skipped.
 * - module text: (module name, page of its text); the classes give the page's index in the module's text.
 */
import type { FileInfo, PageClasses } from '../harness/introspection/page-classes.ts';
import { FRAME_BITS, PAGE_KINDS } from '../harness/introspection/page-classes.ts';
import { type ApplyResult, REFUSED_BYTES_DIFFER, REFUSED_NO_SAME_BYTES } from '../harness/sharing/ledger.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import type { MetricDeclarations, ShareGroup } from '../harness/sharing/types.ts';
import { pageIndex } from '../harness/hashing/scan-engine.ts';

const PAGECACHE = PAGE_KINDS.indexOf('pagecache');
const SHMEM = PAGE_KINDS.indexOf('shmem');
const MODULE_TEXT = PAGE_KINDS.indexOf('module-text');

/** What a key groups, as the metric names' prefix. */
export type KeyKind = 'pagecache' | 'shmem' | 'module_text';
const KIND_CODE: Record<KeyKind, number> = { pagecache: 1, shmem: 2, module_text: 3 };
const KIND_OF_CODE: KeyKind[] = ['pagecache', 'pagecache', 'shmem', 'module_text'];

const KEY_TEXT: Record<KeyKind, string> = {
  pagecache: 'page-cache frames of disk files, key (file system, s_id, s_dev, inode, generation, mtime, ctime, index), dirty and writeback skipped',
  shmem: 'shmem frames (tmpfs, rootfs), key (file system, s_id, s_dev, inode, size, mtime, index), writeback skipped',
  module_text: 'module text frames, key (module name, page of its text)',
};

/** The figures of one key kind (declared by every strategy that uses it). */
export function keyMetricDeclarations(kinds: readonly KeyKind[]): MetricDeclarations {
  return Object.fromEntries(
    kinds.flatMap((kind) => [
      [`${kind}_frames`, { unit: 'pages', method: `frames of this class in all guests this tick (${KEY_TEXT[kind]})` }],
      ...(kind === 'module_text'
        ? []
        : [
            [
              `${kind}_skipped_frames`,
              {
                unit: 'pages',
                method: `frames of this class left out this tick: ${kind === 'pagecache' ? 'dirty or writeback' : 'writeback'}, or of a file whose size or times changed at one of the guest's last ${UNSTEADY_TICKS} classifications (being written: keyed once it holds still that long)`,
              },
            ],
          ]),
      [`${kind}_key_groups`, { unit: 'groups', method: `keys held by frames of two or more guests this tick: one group each (${KEY_TEXT[kind]})` }],
      [`${kind}_key_pages`, { unit: 'pages', method: 'frames of those keys this tick' }],
      [
        `${kind}_key_proposed_pages`,
        {
          unit: 'pages',
          method:
            'of those, frames proposed to the ledger this tick: a key whose frames the ledger holds as one frame already (StrategyContext.sharedFrameIds; accounted ledger) is not proposed again',
        },
      ],
      [
        `${kind}_key_held_back_pages`,
        {
          unit: 'pages',
          method:
            kind === 'shmem'
              ? 'never: a shmem frame can be written without its struct page saying so, so its keys are proposed at every tick'
              : `of the key pages, frames of keys the ledger refused for their bytes at one of the last ${REFUSAL_TICKS} ticks, no frame of which was classified again since: not proposed again (their bytes are the file's on disk or the module's text, and change only with the class)`,
        },
      ],
      [
        `${kind}_key_refused_pages`,
        {
          unit: 'pages',
          method:
            "of those, frames the ledger's byte comparison refused this tick (bytes differ from the rest of the group): the key's mismatches; no other page is read by the strategy",
        },
      ],
    ]),
  );
}

function fileKey(file: FileInfo, kind: number): string {
  const id = `${file.fsType}|${file.deviceName}|${file.device}|${file.ino}`;
  const mtime = `${file.mtime.sec}.${file.mtime.nsec}`;
  return kind === SHMEM ? `m|${id}|${file.size}|${mtime}` : `f|${id}|${file.generation}|${mtime}|${file.ctime.sec}.${file.ctime.nsec}`;
}

/**
 * A key the ledger refused for its bytes is not proposed again for this many ticks, unless a frame of it is
 * classified again (it joins or leaves the key, or its class changes). Module text differs across guests where
 * a module was relocated differently, and a clean page-cache frame holds what the file holds: neither changes
 * without its struct page changing, so proposing them again at every tick only compares the same bytes again.
 * After this many ticks they are proposed once more all the same (a bound on how long a wrong judgement lasts).
 */
export const REFUSAL_TICKS = 16;

/**
 * A file whose facts changed at one of its guest's last this many classifications (FileInfo.changedAt: it is
 * being written — a log, a journal, a database table) is unsteady: its frames are left out of the keys until it
 * holds still that long. Its key moves with its mtime, so keying its frames would move them all to new slots at
 * each change, for keys that another guest's copy matches only if written at the same nanosecond; journald's
 * runtime journal (≈ 3,000 frames per real guest) changes at most ticks of 10 s, with gaps of a tick or two.
 */
export const UNSTEADY_TICKS = 4;

/** Page indexes below this are looked up in a table per key (files up to 256 MiB); above, in a Map. */
const DENSE_INDEXES = 65_536;

/**
 * Slots of one key kind across guests, kept from tick to tick: per (key id, page index), the frame of each
 * guest (−1: none). A slot no guest holds any more is given back and used again: a file whose key changes every
 * tick (a journal on tmpfs: its mtime moves) would otherwise leave a new set of empty slots behind at each tick.
 */
class Slots {
  private frames = new Int32Array(0);
  private counts = new Uint8Array(0);
  /** Per slot, the key id and page index it stands for (to find it in its tables when it is given back). */
  private owner = new Int32Array(0);
  private index = new Float64Array(0);
  /** Per slot, the tick (≥ 1) at which the ledger refused its pages for their bytes; 0: not refused since its frames last changed. */
  private refusedAt = new Int32Array(0);
  /**
   * Per key id: page index → slot. Below DENSE_INDEXES a table (slot + 1 at the index; 0 none) grown to the
   * highest index seen, above it a Map: a file re-keyed at every tick moves all its frames, and a Map insert and
   * delete per frame was most of a tick's proposal.
   */
  private dense: (Int32Array | undefined)[] = [];
  private sparse: (Map<number, number> | undefined)[] = [];
  /** Per key id, the slots it holds (its tables are dropped at 0). */
  private held = new Int32Array(0);
  private spare: number[] = [];
  /** Slots ever made (the highest slot number + 1); `spare` of them are free. */
  size = 0;

  constructor(private readonly guests: number) {}

  /** The slot of (key id, page index), made (or taken from the spare ones) on first use. */
  slotFor(id: number, fileIndex: number): number {
    if (id >= this.held.length) {
      const held = new Int32Array(Math.max(1024, id * 2));
      held.set(this.held);
      this.held = held;
    }
    if (fileIndex >= 0 && fileIndex < DENSE_INDEXES) {
      let table = this.dense[id];
      if (!table || fileIndex >= table.length) {
        const grown = new Int32Array(Math.min(DENSE_INDEXES, Math.max(16, 2 ** Math.ceil(Math.log2(fileIndex + 1)))));
        if (table) grown.set(table);
        this.dense[id] = table = grown;
      }
      const known = table[fileIndex]!;
      if (known > 0) return known - 1;
      const slot = this.made(id, fileIndex);
      table[fileIndex] = slot + 1;
      return slot;
    }
    const map = (this.sparse[id] ??= new Map());
    let slot = map.get(fileIndex);
    if (slot === undefined) {
      slot = this.made(id, fileIndex);
      map.set(fileIndex, slot);
    }
    return slot;
  }

  /** A slot for (id, page index), recorded as its owner's. */
  private made(id: number, fileIndex: number): number {
    const slot = this.add();
    this.owner[slot] = id;
    this.index[slot] = fileIndex;
    this.held[id]!++;
    return slot;
  }

  private add(): number {
    const spare = this.spare.pop();
    if (spare !== undefined) return spare;
    if (this.size === this.counts.length) {
      const capacity = Math.max(1024, this.counts.length * 2);
      const frames = new Int32Array(capacity * this.guests).fill(-1);
      frames.set(this.frames);
      const counts = new Uint8Array(capacity);
      counts.set(this.counts);
      const owner = new Int32Array(capacity);
      owner.set(this.owner);
      const index = new Float64Array(capacity);
      index.set(this.index);
      const refusedAt = new Int32Array(capacity);
      refusedAt.set(this.refusedAt);
      this.refusedAt = refusedAt;
      this.frames = frames;
      this.counts = counts;
      this.owner = owner;
      this.index = index;
    }
    return this.size++;
  }

  /** False if the guest already has a frame for this key (kept out: a group lists each page once). */
  put(slot: number, guest: number, frame: number): boolean {
    const at = slot * this.guests + guest;
    if (this.frames[at] !== -1) return false;
    this.frames[at] = frame;
    this.counts[slot]!++;
    this.refusedAt[slot] = 0;
    return true;
  }

  /** The ledger refused the slot's pages for their bytes at this tick. */
  refuse(slot: number, tick: number): void {
    this.refusedAt[slot] = tick;
  }

  /** The guest's frame leaves the slot; a slot left empty is given back. */
  remove(slot: number, guest: number): void {
    const at = slot * this.guests + guest;
    if (this.frames[at] === -1) return;
    this.frames[at] = -1;
    this.refusedAt[slot] = 0;
    if (--this.counts[slot]! > 0) return;
    const id = this.owner[slot]!;
    const fileIndex = this.index[slot]!;
    if (fileIndex >= 0 && fileIndex < DENSE_INDEXES) this.dense[id]![fileIndex] = 0;
    else this.sparse[id]!.delete(fileIndex);
    if (--this.held[id]! === 0) {
      this.dense[id] = undefined;
      this.sparse[id] = undefined;
    }
    this.spare.push(slot);
  }

  /**
   * Every slot held by two or more guests: `keys` of them, `pages` in them. One group each is proposed, except
   * for a slot whose frames `frameIds` (per guest, the ledger's frame id of each page, 0 none) puts on one frame
   * already (nothing to compare or share), and a slot refused for its bytes fewer than REFUSAL_TICKS ticks
   * before `tick` (held back); the pages proposed are marked with `code` in marks (and listed in marked).
   */
  groups(marks: Uint8Array[], marked: number[][], code: number, frameIds: readonly ArrayLike<number>[] | undefined, tick: number) {
    const groups: ShareGroup[] = [];
    let keys = 0;
    let pages = 0;
    let proposedPages = 0;
    let heldBackPages = 0;
    const { guests, frames: slotFrames, counts, refusedAt } = this;
    for (let slot = 0; slot < this.size; slot++) {
      const count = counts[slot]!;
      if (count < 2) continue;
      keys++;
      pages += count;
      const refused = refusedAt[slot]!;
      if (refused !== 0 && tick - refused < REFUSAL_TICKS) {
        heldBackPages += count;
        continue;
      }
      const at = slot * guests;
      if (frameIds) {
        // On one frame already: every member's frame id the same, and not 0 (none).
        let id = -1;
        for (let g = 0; g < guests && id !== 0; g++) {
          const frame = slotFrames[at + g]!;
          if (frame < 0) continue;
          const its = frameIds[g]![frame]!;
          id = id === -1 || id === its ? its : 0;
        }
        if (id > 0) continue;
      }
      const indices = new Uint32Array(count);
      let n = 0;
      for (let g = 0; g < guests; g++) {
        const frame = slotFrames[at + g]!;
        if (frame < 0) continue;
        indices[n++] = pageIndex(g, frame);
        marks[g]![frame] = code;
        marked[g]!.push(frame);
      }
      groups.push(new PackedGroup(indices, false));
      proposedPages += count;
    }
    return { groups, keys, pages, proposedPages, heldBackPages };
  }
}

/** The figures a frame counts in (GuestSlots.counted), so that a frame slotted again takes its old part out. */
const COUNTED = { pagecache: 1, pagecacheSkipped: 2, shmem: 4, shmemSkipped: 8, moduleText: 16 } as const;

/** One guest's part of the figures, kept up to date frame by frame as frames are slotted again. */
interface GuestFigures {
  pagecache: number;
  pagecacheSkipped: number;
  shmem: number;
  shmemSkipped: number;
  moduleText: number;
}

/** Where one guest's frames stand in the slots, as of the classes last proposed from. */
interface GuestSlots {
  classes: PageClasses;
  /**
   * Per frame: its slot (in its kind's Slots), −1 none, −2 left out as a second frame of a key in this guest,
   * −3 left out as a frame of an unsteady file (below).
   */
  slot: Int32Array;
  /** Per frame: the kind code of its slot (KIND_CODE; 0 none). */
  code: Uint8Array;
  /** Per entry of classes.files: its key's id (−1: not made yet). */
  fileIds: Int32Array;
  /** Per entry of classes.files: 1 if it is unsteady (UNSTEADY_TICKS): its frames are left out, in no slot. */
  unsteady: Uint8Array;
  /** The key id of each of classes.modules. */
  moduleIds: number[];
  /** Per frame: the COUNTED flags of its part in the figures. */
  counted: Uint8Array;
  figures: GuestFigures;
  /**
   * The page-cache and shmem frames of each files-table entry, as lists through the frames (−1 ends one): a
   * file whose entry changed has its frames slotted again by walking its list, not every frame of the guest.
   * listedUnder: per frame the entry it is listed under (−1 none); firstOf: per entry its first frame.
   */
  listedUnder: Int32Array;
  next: Int32Array;
  prev: Int32Array;
  firstOf: Int32Array;
}

/**
 * Proposes the groups of the key kinds it is given, tick after tick, and reads back what the ledger refused
 * of them (judge). Reads no guest page: only the classes' columns and files table.
 *
 * Incremental: the slots (key → frame per guest) are kept from tick to tick, and so are the figures. Where a
 * guest's classes follow from the ones proposed last (PageClasses.delta), only its frames classified again
 * (delta.list), and the frames of a file whose entry changed (walked through that file's list), are taken out
 * of their slot and put in again; otherwise (and when the modules changed) every frame of the guest is. A key
 * whose frames the ledger already holds as one frame (StrategyContext.sharedFrameIds) is not proposed again:
 * there is nothing to compare or share; nor, for REFUSAL_TICKS ticks, is a key the ledger refused for its bytes
 * (judge), unless a frame of it is classified again.
 */
export class ClassKeyProposer {
  /** Per guest, which key kind proposed each frame this tick (KIND_CODE; 0: none), for judge(). */
  private marks: Uint8Array[] = [];
  /** Where marks holds a code this tick: cleared there at the next tick instead of filling every frame. */
  private marked: number[][] = [];
  /** Whether this tick proposed anything (a refused tick does not: judge() then reports nothing). */
  private proposed = false;
  private readonly want: Set<KeyKind>;
  private slots: { pagecache: Slots; shmem: Slots; module_text: Slots } | undefined;
  private fileKeys = new Map<string, number>();
  private moduleKeys = new Map<string, number>();
  private guests: GuestSlots[] = [];
  /** Frames put into slots again at the last propose(), all guests (a figure for the notes and tests). */
  lastReslotted = 0;
  /** Ticks proposed so far (the clock of Slots.refusedAt). */
  private tick = 0;

  /** Slots made so far, all kinds (empty ones are used again, so this stays near the number of keys held). */
  get slotsMade(): number {
    return this.slots ? this.slots.pagecache.size + this.slots.shmem.size + this.slots.module_text.size : 0;
  }

  constructor(private readonly kinds: readonly KeyKind[]) {
    this.want = new Set(kinds);
  }

  propose(classes: readonly PageClasses[], frameIds?: readonly ArrayLike<number>[]): { groups: ShareGroup[]; metrics: Record<string, number> } {
    this.proposed = true;
    this.tick++;
    if (!this.slots || this.guests.length !== classes.length || this.guests.some((s, g) => s.classes.frames !== classes[g]!.frames)) this.reset(classes.length);
    const slots = this.slots!;
    if (this.marks.length !== classes.length || this.marks.some((m, g) => m.length !== classes[g]!.frames)) {
      this.marks = classes.map((c) => new Uint8Array(c.frames));
      this.marked = classes.map(() => []);
    } else {
      this.marks.forEach((mark, g) => {
        for (const frame of this.marked[g]!) mark[frame] = 0;
        this.marked[g] = [];
      });
    }
    let reslotted = 0;
    classes.forEach((c, g) => {
      const before = this.guests[g];
      const follows = before !== undefined && c.delta?.since === before.classes;
      const state = this.guestSlots(c, g, follows ? before : undefined);
      const moduleChanged = follows && (state.moduleIds.length !== before.moduleIds.length || state.moduleIds.some((id, i) => id !== before.moduleIds[i]));
      if (!follows || moduleChanged) {
        for (let frame = 0; frame < c.frames; frame++) this.reslot(state, slots, g, frame);
        reslotted += c.frames;
      } else {
        // The frames of a file entry are slotted again when its key may have changed (the entry is not the object
        // it was) or when it became unsteady or steady (UNSTEADY_TICKS). A file unsteady at the last tick and still
        // now (a journal written at most ticks) is not walked: its frames were left out then, and those classified
        // since are in the list.
        const stale: number[] = [];
        const shared = Math.min(c.files.length, before.classes.files.length);
        for (let r = 0; r < shared; r++) {
          const was = before.unsteady[r] === 1;
          const now = state.unsteady[r] === 1;
          if (c.files[r] === before.classes.files[r] ? was === now : was && now) continue;
          for (let frame = r < state.firstOf.length ? state.firstOf[r]! : -1; frame >= 0; frame = state.next[frame]!) stale.push(frame);
        }
        const list = c.delta!.list;
        for (let i = 0; i < list.length; i++) this.reslot(state, slots, g, list[i]!);
        const redo = c.delta!.redo;
        for (const frame of stale) {
          if (redo[frame] === 1) continue;
          this.reslot(state, slots, g, frame);
          reslotted++;
        }
        reslotted += list.length;
      }
      this.guests[g] = state;
    });
    this.lastReslotted = reslotted;
    const figure = (name: keyof GuestFigures) => this.guests.reduce((sum, state) => sum + state.figures[name], 0);
    const frames = { pagecache: figure('pagecache'), shmem: figure('shmem'), module_text: figure('moduleText') };
    const skipped = { pagecache: figure('pagecacheSkipped'), shmem: figure('shmemSkipped'), module_text: 0 };
    const groups: ShareGroup[] = [];
    const metrics: Record<string, number> = {};
    for (const kind of ['pagecache', 'shmem', 'module_text'] as const) {
      if (!this.want.has(kind)) continue;
      const made = slots[kind].groups(this.marks, this.marked, KIND_CODE[kind], frameIds, this.tick);
      groups.push(...made.groups);
      metrics[`${kind}_frames`] = frames[kind];
      if (kind !== 'module_text') metrics[`${kind}_skipped_frames`] = skipped[kind];
      metrics[`${kind}_key_groups`] = made.keys;
      metrics[`${kind}_key_pages`] = made.pages;
      metrics[`${kind}_key_proposed_pages`] = made.proposedPages;
      metrics[`${kind}_key_held_back_pages`] = made.heldBackPages;
    }
    return { groups, metrics };
  }

  /** A frame out of the slot, file list and figures it was in, into the ones its class gives it now. */
  private reslot(state: GuestSlots, slots: { pagecache: Slots; shmem: Slots; module_text: Slots }, g: number, frame: number): void {
    const c = state.classes;
    const code = state.code[frame]!;
    if (code !== 0) slots[KIND_OF_CODE[code]!].remove(state.slot[frame]!, g);
    state.slot[frame] = -1;
    state.code[frame] = 0;
    unlist(state, frame);
    uncount(state, frame);
    const k = c.kind[frame]!;
    const isFile = k === PAGECACHE || k === SHMEM;
    if (isFile) list(state, frame, c.ref[frame]!);
    let kindName: KeyKind | undefined;
    let slot = -1;
    if (isFile) {
      kindName = k === SHMEM ? 'shmem' : 'pagecache';
      const b = c.bits[frame]!;
      if (!this.want.has(kindName) || b & FRAME_BITS.writeback || (k === PAGECACHE && b & FRAME_BITS.dirty)) kindName = undefined;
      else if (state.unsteady[c.ref[frame]!] === 1) {
        kindName = undefined;
        state.slot[frame] = -3;
      } else {
        const r = c.ref[frame]!;
        let id = state.fileIds[r]!;
        if (id < 0) {
          const key = fileKey(c.files[r]!, k);
          id = this.fileKeys.get(key) ?? (this.fileKeys.set(key, this.fileKeys.size), this.fileKeys.size - 1);
          state.fileIds[r] = id;
        }
        slot = slots[kindName].slotFor(id, c.fileIndex[frame]!);
      }
    } else if (k === MODULE_TEXT && this.want.has('module_text')) {
      kindName = 'module_text';
      slot = slots.module_text.slotFor(state.moduleIds[c.ref[frame]!]!, c.fileIndex[frame]!);
    }
    if (kindName !== undefined) {
      if (slots[kindName].put(slot, g, frame)) {
        state.slot[frame] = slot;
        state.code[frame] = KIND_CODE[kindName];
      } else state.slot[frame] = -2;
    }
    count(state, frame, k, c.bits[frame]!, this.want);
  }

  /** Forget every slot (a new set of guests). */
  private reset(guests: number): void {
    this.slots = { pagecache: new Slots(guests), shmem: new Slots(guests), module_text: new Slots(guests) };
    this.fileKeys = new Map();
    this.moduleKeys = new Map();
    this.guests = [];
  }

  /** A guest's slot state for these classes: carried on from `before` (same frames, file ids of unchanged entries kept), or new. */
  private guestSlots(c: PageClasses, g: number, before: GuestSlots | undefined): GuestSlots {
    const moduleIds = c.modules.map((name) => this.moduleKeys.get(name) ?? (this.moduleKeys.set(name, this.moduleKeys.size), this.moduleKeys.size - 1));
    const fileIds = new Int32Array(c.files.length).fill(-1);
    if (before) {
      for (let r = 0; r < Math.min(c.files.length, before.classes.files.length); r++)
        if (c.files[r] === before.classes.files[r]) fileIds[r] = before.fileIds[r]!;
      return { ...before, classes: c, fileIds, moduleIds, unsteady: unsteadyFiles(c) };
    }
    // Not following on: the guest's frames leave every slot they held, and all are slotted anew.
    const old = this.guests[g];
    if (old) {
      for (let frame = 0; frame < old.code.length; frame++) {
        const code = old.code[frame]!;
        if (code !== 0) this.slots![KIND_OF_CODE[code]!].remove(old.slot[frame]!, g);
      }
    }
    return {
      classes: c,
      slot: new Int32Array(c.frames).fill(-1),
      code: new Uint8Array(c.frames),
      fileIds,
      unsteady: unsteadyFiles(c),
      moduleIds,
      counted: new Uint8Array(c.frames),
      figures: { pagecache: 0, pagecacheSkipped: 0, shmem: 0, shmemSkipped: 0, moduleText: 0 },
      listedUnder: new Int32Array(c.frames).fill(-1),
      next: new Int32Array(c.frames).fill(-1),
      prev: new Int32Array(c.frames).fill(-1),
      firstOf: new Int32Array(Math.max(16, c.files.length)).fill(-1),
    };
  }

  /** This tick proposes nothing (refused): judge() reports nothing. */
  idle(): void {
    this.proposed = false;
  }

  /** Of this tick's proposal, the frames the ledger refused, per key kind. */
  judge(applied: ApplyResult): Record<string, number> {
    if (!this.proposed) return {};
    const refused: Record<string, number> = Object.fromEntries(this.kinds.map((kind) => [`${kind}_key_refused_pages`, 0]));
    for (const { pages, reason } of applied.refused) {
      // Refused for the bytes themselves: the key is held back (REFUSAL_TICKS), except shmem's, whose bytes can change unseen.
      const forBytes = reason === REFUSED_BYTES_DIFFER || reason === REFUSED_NO_SAME_BYTES;
      for (const page of pages) {
        const code = this.marks[page.guest]?.[page.gfn] ?? 0;
        if (!code) continue;
        const kind = KIND_OF_CODE[code]!;
        refused[`${kind}_key_refused_pages`]!++;
        const slot = this.guests[page.guest]?.slot[page.gfn] ?? -1;
        if (forBytes && kind !== 'shmem' && slot >= 0) this.slots![kind].refuse(slot, this.tick);
      }
    }
    return refused;
  }
}

/** Per entry of the classes' files table, 1 where it is unsteady (UNSTEADY_TICKS): taken from the classes alone, so that a new proposer leaves out what a kept one does. */
function unsteadyFiles(c: PageClasses): Uint8Array {
  const unsteady = new Uint8Array(c.files.length);
  for (let r = 0; r < c.files.length; r++) {
    const at = c.files[r]?.changedAt;
    if (at !== undefined && c.sequence - at < UNSTEADY_TICKS) unsteady[r] = 1;
  }
  return unsteady;
}

/** The frame into the list of files-table entry r (at its head). */
function list(state: GuestSlots, frame: number, r: number): void {
  if (r >= state.firstOf.length) {
    const grown = new Int32Array(Math.max(r + 1, state.firstOf.length * 2)).fill(-1);
    grown.set(state.firstOf);
    state.firstOf = grown;
  }
  const first = state.firstOf[r]!;
  state.next[frame] = first;
  state.prev[frame] = -1;
  if (first >= 0) state.prev[first] = frame;
  state.firstOf[r] = frame;
  state.listedUnder[frame] = r;
}

/** The frame out of the list it is in, if any. */
function unlist(state: GuestSlots, frame: number): void {
  const r = state.listedUnder[frame]!;
  if (r < 0) return;
  const before = state.prev[frame]!;
  const after = state.next[frame]!;
  if (before >= 0) state.next[before] = after;
  else state.firstOf[r] = after;
  if (after >= 0) state.prev[after] = before;
  state.listedUnder[frame] = -1;
  state.next[frame] = -1;
  state.prev[frame] = -1;
}

/** The frame's part of the figures taken out. */
function uncount(state: GuestSlots, frame: number): void {
  const flags = state.counted[frame]!;
  if (flags === 0) return;
  const f = state.figures;
  if (flags & COUNTED.pagecache) f.pagecache--;
  if (flags & COUNTED.pagecacheSkipped) f.pagecacheSkipped--;
  if (flags & COUNTED.shmem) f.shmem--;
  if (flags & COUNTED.shmemSkipped) f.shmemSkipped--;
  if (flags & COUNTED.moduleText) f.moduleText--;
  state.counted[frame] = 0;
}

/** The frame's part of the figures as its class (and slot, just given) say: frames of each kind, and those left out. */
function count(state: GuestSlots, frame: number, k: number, b: number, want: Set<KeyKind>): void {
  let flags = 0;
  const second = state.slot[frame]! <= -2; // left out: a second frame of its key in this guest, or of an unsteady file
  if (k === PAGECACHE && want.has('pagecache')) {
    flags = COUNTED.pagecache;
    if (b & (FRAME_BITS.writeback | FRAME_BITS.dirty) || second) flags |= COUNTED.pagecacheSkipped;
  } else if (k === SHMEM && want.has('shmem')) {
    flags = COUNTED.shmem;
    if (b & FRAME_BITS.writeback || second) flags |= COUNTED.shmemSkipped;
  } else if (k === MODULE_TEXT) flags = COUNTED.moduleText;
  if (flags === 0) return;
  const f = state.figures;
  if (flags & COUNTED.pagecache) f.pagecache++;
  if (flags & COUNTED.pagecacheSkipped) f.pagecacheSkipped++;
  if (flags & COUNTED.shmem) f.shmem++;
  if (flags & COUNTED.shmemSkipped) f.shmemSkipped++;
  if (flags & COUNTED.moduleText) f.moduleText++;
  state.counted[frame] = flags;
}
