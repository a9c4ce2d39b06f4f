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
import type { ApplyResult } from '../harness/sharing/ledger.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import type { MetricDeclarations, ShareGroup } from '../harness/sharing/types.ts';
import { pageIndex } from '../harness/hashing/scan-engine.ts';

const PAGECACHE = PAGE_KINDS.indexOf('pagecache');
const SHMEM = PAGE_KINDS.indexOf('shmem');
const MODULE_TEXT = PAGE_KINDS.indexOf('module-text');
const FREE = PAGE_KINDS.indexOf('free');

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
              { unit: 'pages', method: `frames of this class left out this tick: ${kind === 'pagecache' ? 'dirty or writeback' : 'writeback'}` },
            ],
          ]),
      [`${kind}_key_groups`, { unit: 'groups', method: `keys held by frames of two or more guests this tick: one group each (${KEY_TEXT[kind]})` }],
      [`${kind}_key_pages`, { unit: 'pages', method: 'frames of those keys this tick' }],
      [
        `${kind}_key_proposed_pages`,
        {
          unit: 'pages',
          method:
            'of those, frames proposed to the ledger this tick: a key whose frames the ledger holds as one frame already (StrategyContext.sharedFrameOf; accounted ledger) is not proposed again',
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

/** Slots of one key kind across guests, kept from tick to tick: per key, the frame of each guest (−1: none). */
class Slots {
  private frames = new Int32Array(0);
  private counts = new Uint8Array(0);
  size = 0;

  constructor(private readonly guests: number) {}

  add(): number {
    if (this.size === this.counts.length) {
      const capacity = Math.max(1024, this.counts.length * 2);
      const frames = new Int32Array(capacity * this.guests).fill(-1);
      frames.set(this.frames);
      const counts = new Uint8Array(capacity);
      counts.set(this.counts);
      this.frames = frames;
      this.counts = counts;
    }
    return this.size++;
  }

  /** False if the guest already has a frame for this key (kept out: a group lists each page once). */
  put(slot: number, guest: number, frame: number): boolean {
    const at = slot * this.guests + guest;
    if (this.frames[at] !== -1) return false;
    this.frames[at] = frame;
    this.counts[slot]!++;
    return true;
  }

  /** The guest's frame leaves the slot. */
  remove(slot: number, guest: number): void {
    const at = slot * this.guests + guest;
    if (this.frames[at] === -1) return;
    this.frames[at] = -1;
    this.counts[slot]!--;
  }

  /**
   * Every slot held by two or more guests: `keys` of them, `pages` in them. One group each is proposed, except
   * for a slot whose frames `frameOf` (the ledger's frame id of a page, 0 none) puts on one frame already
   * (nothing to compare or share); the pages proposed are marked with `code` in marks.
   */
  groups(marks: Uint8Array[], code: number, frameOf: ((guest: number, gfn: number) => number) | undefined) {
    const groups: ShareGroup[] = [];
    let keys = 0;
    let pages = 0;
    let proposedPages = 0;
    const { guests } = this;
    for (let slot = 0; slot < this.size; slot++) {
      const count = this.counts[slot]!;
      if (count < 2) continue;
      keys++;
      pages += count;
      if (frameOf) {
        // On one frame already: every member's frame id the same, and not 0 (none).
        let id = -1;
        for (let g = 0; g < guests && id !== 0; g++) {
          const frame = this.frames[slot * guests + g]!;
          if (frame < 0) continue;
          const its = frameOf(g, frame);
          id = id === -1 || id === its ? its : 0;
        }
        if (id > 0) continue;
      }
      const indices = new Uint32Array(count);
      let n = 0;
      for (let g = 0; g < guests; g++) {
        const frame = this.frames[slot * guests + g]!;
        if (frame < 0) continue;
        indices[n++] = pageIndex(g, frame);
        marks[g]![frame] = code;
      }
      groups.push(new PackedGroup(indices, false));
      proposedPages += count;
    }
    return { groups, keys, pages, proposedPages };
  }
}

/** Where one guest's frames stand in the slots, as of the classes last proposed from. */
interface GuestSlots {
  classes: PageClasses;
  /** Per frame: its slot (in its kind's Slots), −1 none, −2 left out as a second frame of a key in this guest. */
  slot: Int32Array;
  /** Per frame: the kind code of its slot (KIND_CODE; 0 none). */
  code: Uint8Array;
  /** Per entry of classes.files: its key's id (−1: not made yet). */
  fileIds: Int32Array;
  /** The key id of each of classes.modules. */
  moduleIds: number[];
}

/**
 * Proposes the groups of the key kinds it is given, tick after tick, and reads back what the ledger refused
 * of them (judge). Reads no guest page: only the classes' columns and files table.
 *
 * Incremental: the slots (key → frame per guest) are kept from tick to tick. Where a guest's classes follow from
 * the ones proposed last (PageClasses.delta), only its frames classified again, and the frames of a file whose
 * entry changed, are taken out of their slot and put in again; otherwise every frame of the guest is. And a key
 * whose frames the ledger already holds as one frame (StrategyContext.sharedFrameOf) is not proposed again:
 * there is nothing to compare or share.
 */
export class ClassKeyProposer {
  /** Per guest, which key kind proposed each frame this tick (KIND_CODE; 0: none), for judge(). */
  private marks: Uint8Array[] = [];
  /** Whether this tick proposed anything (a refused tick does not: judge() then reports nothing). */
  private proposed = false;
  private readonly want: Set<KeyKind>;
  private slots: { pagecache: Slots; shmem: Slots; module_text: Slots } | undefined;
  private fileKeys = new Map<string, number>();
  private moduleKeys = new Map<string, number>();
  /** Per key id: page index → slot (file keys of both kinds share ids; module keys have their own). */
  private fileSlots: Map<number, number>[] = [];
  private moduleSlots: Map<number, number>[] = [];
  private guests: GuestSlots[] = [];
  /** Frames put into slots again at the last propose(), all guests (a figure for the notes and tests). */
  lastReslotted = 0;

  constructor(private readonly kinds: readonly KeyKind[]) {
    this.want = new Set(kinds);
  }

  propose(classes: readonly PageClasses[], frameOf?: (guest: number, gfn: number) => number): { groups: ShareGroup[]; metrics: Record<string, number> } {
    this.proposed = true;
    if (!this.slots || this.guests.length !== classes.length || this.guests.some((s, g) => s.classes.frames !== classes[g]!.frames)) this.reset(classes.length);
    const slots = this.slots!;
    if (this.marks.length !== classes.length || this.marks.some((m, g) => m.length !== classes[g]!.frames))
      this.marks = classes.map((c) => new Uint8Array(c.frames));
    else for (const mark of this.marks) mark.fill(0);
    const wantPagecache = this.want.has('pagecache');
    const wantShmem = this.want.has('shmem');
    let pagecacheFrames = 0;
    let shmemFrames = 0;
    let moduleFrames = 0;
    let pagecacheSkipped = 0;
    let shmemSkipped = 0;
    let reslotted = 0;
    classes.forEach((c, g) => {
      const before = this.guests[g];
      const follows = before !== undefined && c.delta?.since === before.classes;
      const state = this.guestSlots(c, g, follows ? before : undefined);
      const fileIds = state.fileIds;
      // A file entry that is not the object it was: its key may have changed, so its frames are slotted again.
      const fileChanged = new Uint8Array(c.files.length);
      if (follows) for (let r = 0; r < c.files.length; r++) if (c.files[r] !== before.classes.files[r]) fileChanged[r] = 1;
      const moduleChanged = follows && state.moduleIds.some((id, i) => id !== before.moduleIds[i]);
      const redo = follows ? c.delta!.redo : undefined;
      const oldKind = follows ? before.classes.kind : undefined;
      const oldRef = follows ? before.classes.ref : undefined;
      const { kind, bits, ref, fileIndex } = c;
      /** Out of the slot the frame was in, into the one its class keys now (if any). */
      const reslot = (frame: number, k: number, isFile: boolean): void => {
        const code = state.code[frame]!;
        if (code !== 0) slots[KIND_OF_CODE[code]!].remove(state.slot[frame]!, g);
        state.slot[frame] = -1;
        state.code[frame] = 0;
        let kindName: KeyKind;
        let slot: number;
        if (isFile) {
          kindName = k === SHMEM ? 'shmem' : 'pagecache';
          if (!this.want.has(kindName)) return;
          const b = bits[frame]!;
          if (b & FRAME_BITS.writeback || (k === PAGECACHE && b & FRAME_BITS.dirty)) return;
          const r = ref[frame]!;
          let id = fileIds[r]!;
          if (id < 0) {
            const key = fileKey(c.files[r]!, k);
            id = this.fileKeys.get(key) ?? (this.fileKeys.set(key, this.fileKeys.size), this.fileKeys.size - 1);
            fileIds[r] = id;
          }
          slot = slotOf(this.fileSlots, slots[kindName], id, fileIndex[frame]!);
        } else if (k === MODULE_TEXT && this.want.has('module_text')) {
          kindName = 'module_text';
          slot = slotOf(this.moduleSlots, slots.module_text, state.moduleIds[ref[frame]!]!, fileIndex[frame]!);
        } else return;
        if (slots[kindName].put(slot, g, frame)) {
          state.slot[frame] = slot;
          state.code[frame] = KIND_CODE[kindName];
        } else state.slot[frame] = -2;
      };
      const slotOfFrame = state.slot;
      for (let frame = 0; frame < c.frames; frame++) {
        const k = kind[frame]!;
        if (follows) {
          const was = oldKind![frame]!;
          const stale =
            redo![frame] === 1 ||
            ((was === PAGECACHE || was === SHMEM) && fileChanged[oldRef![frame]!] === 1) ||
            ((k === PAGECACHE || k === SHMEM) && fileChanged[ref[frame]!] === 1) ||
            (moduleChanged && (k === MODULE_TEXT || was === MODULE_TEXT));
          if (stale) {
            reslotted++;
            reslot(frame, k, k === PAGECACHE || k === SHMEM);
          }
        } else {
          reslotted++;
          reslot(frame, k, k === PAGECACHE || k === SHMEM);
        }
        // Figures of this tick, over every frame.
        if (k === PAGECACHE) {
          if (!wantPagecache) continue;
          pagecacheFrames++;
          if (bits[frame]! & (FRAME_BITS.writeback | FRAME_BITS.dirty) || slotOfFrame[frame] === -2) pagecacheSkipped++;
        } else if (k === SHMEM) {
          if (!wantShmem) continue;
          shmemFrames++;
          if (bits[frame]! & FRAME_BITS.writeback || slotOfFrame[frame] === -2) shmemSkipped++;
        } else if (k === MODULE_TEXT) moduleFrames++;
      }
      this.guests[g] = state;
    });
    this.lastReslotted = reslotted;
    const frames = { pagecache: pagecacheFrames, shmem: shmemFrames, module_text: moduleFrames };
    const skipped = { pagecache: pagecacheSkipped, shmem: shmemSkipped, module_text: 0 };
    const groups: ShareGroup[] = [];
    const metrics: Record<string, number> = {};
    for (const kind of ['pagecache', 'shmem', 'module_text'] as const) {
      if (!this.want.has(kind)) continue;
      const made = slots[kind].groups(this.marks, KIND_CODE[kind], frameOf);
      groups.push(...made.groups);
      metrics[`${kind}_frames`] = frames[kind];
      if (kind !== 'module_text') metrics[`${kind}_skipped_frames`] = skipped[kind];
      metrics[`${kind}_key_groups`] = made.keys;
      metrics[`${kind}_key_pages`] = made.pages;
      metrics[`${kind}_key_proposed_pages`] = made.proposedPages;
    }
    return { groups, metrics };
  }

  /** Forget every slot (a new set of guests). */
  private reset(guests: number): void {
    this.slots = { pagecache: new Slots(guests), shmem: new Slots(guests), module_text: new Slots(guests) };
    this.fileKeys = new Map();
    this.moduleKeys = new Map();
    this.fileSlots = [];
    this.moduleSlots = [];
    this.guests = [];
  }

  /** A guest's slot state for these classes: carried on from `before` (same frames, file ids of unchanged entries kept), or new. */
  private guestSlots(c: PageClasses, g: number, before: GuestSlots | undefined): GuestSlots {
    const moduleIds = c.modules.map((name) => this.moduleKeys.get(name) ?? (this.moduleKeys.set(name, this.moduleKeys.size), this.moduleKeys.size - 1));
    const fileIds = new Int32Array(c.files.length).fill(-1);
    if (before) {
      for (let r = 0; r < Math.min(c.files.length, before.classes.files.length); r++)
        if (c.files[r] === before.classes.files[r]) fileIds[r] = before.fileIds[r]!;
      return { classes: c, slot: before.slot, code: before.code, fileIds, moduleIds };
    }
    // Not following on: the guest's frames leave every slot they held, and all are slotted anew.
    const old = this.guests[g];
    if (old) {
      for (let frame = 0; frame < old.code.length; frame++) {
        const code = old.code[frame]!;
        if (code !== 0) this.slots![KIND_OF_CODE[code]!].remove(old.slot[frame]!, g);
      }
    }
    return { classes: c, slot: new Int32Array(c.frames).fill(-1), code: new Uint8Array(c.frames), fileIds, moduleIds };
  }

  /** This tick proposes nothing (refused): judge() reports nothing. */
  idle(): void {
    this.proposed = false;
  }

  /** Of this tick's proposal, the frames the ledger refused, per key kind. */
  judge(applied: ApplyResult): Record<string, number> {
    if (!this.proposed) return {};
    const refused: Record<string, number> = Object.fromEntries(this.kinds.map((kind) => [`${kind}_key_refused_pages`, 0]));
    for (const { pages } of applied.refused) {
      for (const page of pages) {
        const code = this.marks[page.guest]?.[page.gfn] ?? 0;
        if (code) refused[`${KIND_OF_CODE[code]}_key_refused_pages`]!++;
      }
    }
    return refused;
  }
}

/** The slot of (key id, page index), made on first use. */
function slotOf(perKey: Map<number, number>[], slots: Slots, id: number, fileIndex: number): number {
  const map = (perKey[id] ??= new Map());
  // A small integer key (page indexes of files below 8 TiB): no boxed double per look-up.
  const index = fileIndex <= 0x7fffffff ? fileIndex | 0 : fileIndex;
  let slot = map.get(index);
  if (slot === undefined) map.set(index, (slot = slots.add()));
  return slot;
}

/** Per guest, the frames the classes found free: buddy lists, and the per-CPU lists too if asked. */
export function freeFrames(classes: readonly PageClasses[], perCpu: boolean): { frames: Uint32Array[]; buddy: number; perCpuFrames: number } {
  let buddy = 0;
  let perCpuFrames = 0;
  const frames = classes.map((c) => {
    const out = new Uint32Array(c.frames);
    let n = 0;
    const { kind, bits } = c;
    for (let frame = 0; frame < c.frames; frame++) {
      if (kind[frame] !== FREE) continue;
      if (bits[frame]! & FRAME_BITS.perCpu) {
        perCpuFrames++;
        if (!perCpu) continue;
      } else buddy++;
      out[n++] = frame;
    }
    return out.slice(0, n);
  });
  return { frames, buddy, perCpuFrames };
}
