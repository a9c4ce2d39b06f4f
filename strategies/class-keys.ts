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
      [`${kind}_key_groups`, { unit: 'groups', method: `keys held by frames of two or more guests this tick: one proposed group each (${KEY_TEXT[kind]})` }],
      [
        `${kind}_key_pages`,
        {
          unit: 'pages',
          method: 'frames in those groups, proposed this tick (a group already on one frame is proposed again; the ledger does not compare it again)',
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

/** Slots of one key kind across guests: per key, the frame of each guest (−1: none). */
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

  /** One group per slot held by two or more guests; its pages marked with `code` in marks. */
  groups(marks: Uint8Array[], code: number): { groups: ShareGroup[]; pages: number } {
    const groups: ShareGroup[] = [];
    let pages = 0;
    for (let slot = 0; slot < this.size; slot++) {
      const count = this.counts[slot]!;
      if (count < 2) continue;
      const indices = new Uint32Array(count);
      let n = 0;
      for (let g = 0; g < this.guests; g++) {
        const frame = this.frames[slot * this.guests + g]!;
        if (frame < 0) continue;
        indices[n++] = pageIndex(g, frame);
        marks[g]![frame] = code;
      }
      groups.push(new PackedGroup(indices, false));
      pages += count;
    }
    return { groups, pages };
  }
}

/**
 * Proposes the groups of the key kinds it is given, tick after tick, and reads back what the ledger refused
 * of them (judge). Reads no guest page: only the classes' columns and files table.
 */
export class ClassKeyProposer {
  /** Per guest, which key kind proposed each frame this tick (KIND_CODE; 0: none), for judge(). */
  private marks: Uint8Array[] = [];
  /** Whether this tick proposed anything (a refused tick does not: judge() then reports nothing). */
  private proposed = false;

  constructor(private readonly kinds: readonly KeyKind[]) {}

  propose(classes: readonly PageClasses[]): { groups: ShareGroup[]; metrics: Record<string, number> } {
    const guests = classes.length;
    this.proposed = true;
    if (this.marks.length !== guests || this.marks.some((m, g) => m.length !== classes[g]!.frames)) this.marks = classes.map((c) => new Uint8Array(c.frames));
    else for (const mark of this.marks) mark.fill(0);
    const want = new Set(this.kinds);
    const files = { slots: new Slots(guests), ids: new Map<string, number>(), perKey: [] as Map<number, number>[] };
    const shmem = { slots: new Slots(guests) };
    const modules = { slots: new Slots(guests), ids: new Map<string, number>(), perKey: [] as Map<number, number>[] };
    const frames = { pagecache: 0, shmem: 0, module_text: 0 };
    const skipped = { pagecache: 0, shmem: 0, module_text: 0 };
    const slotOf = (perKey: Map<number, number>[], slots: Slots, id: number, index: number): number => {
      const map = (perKey[id] ??= new Map());
      let slot = map.get(index);
      if (slot === undefined) map.set(index, (slot = slots.add()));
      return slot;
    };
    classes.forEach((c, g) => {
      // Per guest: its files table's entries → key ids (a file's key is the same in every guest that holds it).
      const fileIds = new Int32Array(c.files.length).fill(-1);
      const moduleIds = c.modules.map((name) => modules.ids.get(name) ?? (modules.ids.set(name, modules.ids.size), modules.ids.size - 1));
      const { kind, bits, ref, fileIndex } = c;
      for (let frame = 0; frame < c.frames; frame++) {
        const k = kind[frame]!;
        if (k === PAGECACHE || k === SHMEM) {
          const which = k === SHMEM ? 'shmem' : 'pagecache';
          if (!want.has(which)) continue;
          frames[which]++;
          const b = bits[frame]!;
          if (b & FRAME_BITS.writeback || (k === PAGECACHE && b & FRAME_BITS.dirty)) {
            skipped[which]++;
            continue;
          }
          const r = ref[frame]!;
          let id = fileIds[r]!;
          if (id < 0) {
            const key = fileKey(c.files[r]!, k);
            id = files.ids.get(key) ?? (files.ids.set(key, files.ids.size), files.ids.size - 1);
            fileIds[r] = id;
          }
          const slots = k === SHMEM ? shmem.slots : files.slots;
          if (!slots.put(slotOf(files.perKey, slots, id, fileIndex[frame]!), g, frame)) skipped[which]++;
        } else if (k === MODULE_TEXT && want.has('module_text')) {
          frames.module_text++;
          const id = moduleIds[ref[frame]!]!;
          modules.slots.put(slotOf(modules.perKey, modules.slots, id, fileIndex[frame]!), g, frame);
        }
      }
    });
    const groups: ShareGroup[] = [];
    const metrics: Record<string, number> = {};
    for (const [kind, slots] of [
      ['pagecache', files.slots],
      ['shmem', shmem.slots],
      ['module_text', modules.slots],
    ] as const) {
      if (!want.has(kind)) continue;
      const made = slots.groups(this.marks, KIND_CODE[kind]);
      groups.push(...made.groups);
      metrics[`${kind}_frames`] = frames[kind];
      if (kind !== 'module_text') metrics[`${kind}_skipped_frames`] = skipped[kind];
      metrics[`${kind}_key_groups`] = made.groups.length;
      metrics[`${kind}_key_pages`] = made.pages;
    }
    return { groups, metrics };
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
