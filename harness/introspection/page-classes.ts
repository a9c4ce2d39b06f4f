/**
 * One class per guest frame, from the guest kernel's own struct page array, read from outside while the
 * guest is paused (nothing in the guest changes or helps):
 *
 *   free        in the buddy allocator (the head of a free block of order k covers 2^k frames) or on a per-CPU
 *               free list (per_cpu_pages.lists, walked; orders by list)
 *   pagecache   a file's page: super block (device, s_id, file system), inode number, generation, size,
 *               times, page index; dirty and writeback flags
 *   shmem       the same for swap-backed files (tmpfs, shmem, the initramfs rootfs)
 *   anon        anonymous memory (KSM pages flagged), THP tails with their head
 *   slab        a slab page (PG_slab) and its cache's name
 *   pagetable   a user page table (page_type PG_table)
 *   kernel-text, kernel-rodata, kernel-data   reserved frames of the kernel image, by System.map ranges
 *   module-text the frames of a loaded module's text (the modules list, through the page tables)
 *   reserved    any other PG_reserved frame (firmware, memblock; the struct page array itself flagged)
 *   unknown     allocated with no owner struct page tells (driver pages, vmalloc, large kmalloc compounds,
 *               non-LRU movable pages), or free but on no free list (in transit)
 *
 * struct page of pfn p lies at vmemmap_base + 64·p (SPARSEMEM_VMEMMAP); vmemmap_base is read from the guest
 * (KASLR randomises it) and vmemmap is translated through the kernel's page tables. Offsets come from the
 * kernel build's BTF (layout-profile.ts), the rest from the series rules (series-rules.ts), both checked
 * against the guest's VMCOREINFO first. Anything inconsistent — a pointer outside guest memory, a free block
 * holding a frame in use, a tail whose head is no compound head, a per-CPU list whose length is not its count,
 * struct pages that changed between the first and a second read — is a PageClassRefusal naming the guest and
 * the check, never a class.
 */
import type { Guest } from '../backends/types.ts';
import { XmeError } from '../util/errors.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { KernelInfo } from './kernel-info.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { KernelMemory, PageClassRefusal } from './kernel-memory.ts';
import { readKernelCounters, readTopology, type KernelCounters, type KernelTopology } from './kernel-counters.ts';
import { layoutProfile, readGuestBtf, type LayoutProfile } from './layout-profile.ts';
import { rulesDisagreeWithBtf, rulesForKernel, type SeriesRules } from './series-rules.ts';
import { checkVmcoreinfo } from './vmcoreinfo.ts';
import { sha256 } from '../util/hash.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';
import { framesToRedo, refreshCopy, type MemmapRange } from './memmap-delta.ts';

export const PAGE_KINDS = [
  'free',
  'pagecache',
  'shmem',
  'anon',
  'slab',
  'pagetable',
  'kernel-text',
  'kernel-rodata',
  'kernel-data',
  'module-text',
  'reserved',
  'unknown',
] as const;
export type PageKind = (typeof PAGE_KINDS)[number];

/** Why a frame is 'unknown'. */
export const UNKNOWN_REASONS = [
  /** In use (refcount > 0), no mapping, no type: a driver's page, vmalloc, a kernel stack, … */
  'allocated',
  /** A compound page with no mapping and no PG_slab: large kmalloc (6.1 does not mark it), page_frag, … */
  'compound',
  /** A non-LRU movable page (mapping low bits 2: zsmalloc, balloon). */
  'movable',
  /** refcount 0, yet on no free list: being freed or allocated (in a batch) at the pause. */
  'unowned',
  /** A page-cache address_space without a host inode. */
  'no-host',
] as const;
export type UnknownReason = (typeof UNKNOWN_REASONS)[number];

/** The file a page-cache or shmem page belongs to. */
export interface FileInfo {
  /** Kernel virtual addresses of the address_space, its host inode and the inode's super block. */
  mapping: bigint;
  inode: bigint;
  superBlock: bigint;
  /** super_block.s_dev (the kernel's dev_t: major << 20 | minor), s_id and its file_system_type's name. */
  device: number;
  deviceName: string;
  fsType: string;
  ino: number;
  generation: number;
  mode: number;
  size: number;
  mtime: { sec: number; nsec: number };
  ctime: { sec: number; nsec: number };
  /**
   * The classification (PageClasses.sequence) at which this entry replaced an entry of the same file (device,
   * inode number, generation) whose size, times or mode differ: the file is being written. Undefined for an entry
   * made for a file first seen, or classified from scratch.
   */
  changedAt?: number;
}

export type PageClass =
  | { kind: 'free' /** the free block's order and first frame */; order: number; head: number; list: 'buddy' | 'per-cpu' }
  | { kind: 'pagecache' | 'shmem'; file: FileInfo; index: number; dirty: boolean; writeback: boolean; compound: boolean }
  | { kind: 'anon'; ksm: boolean; compound: boolean; head: number /** mapped by some process (FRAME_BITS.unmapped) */; mapped: boolean }
  | { kind: 'slab'; cache: string; head: number }
  | { kind: 'pagetable' }
  | { kind: 'kernel-text' | 'kernel-rodata' | 'kernel-data' }
  | { kind: 'module-text'; module: string /** page k of the module's text */; index: number }
  | { kind: 'reserved'; memmap: boolean }
  | { kind: 'unknown'; reason: UnknownReason };

const KIND = Object.fromEntries(PAGE_KINDS.map((kind, i) => [kind, i])) as Record<PageKind, number>;
const UNKNOWN = Object.fromEntries(UNKNOWN_REASONS.map((reason, i) => [reason, i])) as Record<UnknownReason, number>;
/** A tail whose class is its head's, set in the second pass. */
const PENDING_TAIL = 255;

/** bits[] flags. */
/**
 * unmapped: an anonymous page (not compound) whose _mapcount is −1: mapped by no process any more and not freed
 * yet (an exiting process's pages wait in the kernel's free batch, mmu_gather, still marked anonymous).
 */
export const FRAME_BITS = { dirty: 1, writeback: 2, ksm: 4, tail: 8, compound: 16, perCpu: 32, memmap: 64, unmapped: 128 } as const;

/** The per-CPU membership of two ticks is compared in pieces of this many frames (see classify). */

/** What changed between two ticks' classes of one guest (PageClasses.delta). */
export interface ClassesDelta {
  since: PageClasses;
  /** 1 for each frame classified again (its class may differ from since's); the rest are since's. */
  redo: Uint8Array;
  /** The frames redo marks, ascending (a consumer that follows the classes tick by tick visits only these). */
  list: Int32Array;
  /** How many frames redo marks. */
  redone: number;
}

/** The classes of one guest's frames at one tick, column by column (typed arrays indexed by frame number). */
export class PageClasses {
  constructor(
    readonly guestId: string,
    readonly frames: number,
    /** Index into PAGE_KINDS. */
    readonly kind: Uint8Array,
    /** FRAME_BITS. */
    readonly bits: Uint8Array,
    /** free: the block's order; compound pages: the compound's order; else 0. */
    readonly order: Uint8Array,
    /** free: the block's first frame; compound pages: the head's frame; else the frame itself. */
    readonly head: Uint32Array,
    /** pagecache/shmem: index into files; slab: into caches; module-text: into modules; unknown: into UNKNOWN_REASONS. */
    readonly ref: Int32Array,
    /** pagecache/shmem: the page's index in its file; module-text: the page's index in the module's text. */
    readonly fileIndex: Float64Array,
    readonly files: readonly FileInfo[],
    readonly caches: readonly string[],
    readonly modules: readonly string[],
    /** The kernel's own counters, read at the same pause. */
    readonly counters: KernelCounters,
    readonly topology: KernelTopology,
    delta?: ClassesDelta,
  ) {
    this.delta = delta;
    // Only one step back is kept: a chain of every earlier tick's classes would never be collected.
    if (delta) delta.since.delta = undefined;
  }

  /**
   * How these classes follow from the tick before's of the same guest (incremental classification): a frame
   * with redo[frame] = 0 has the class, bits, order, head, ref and file index it had in `since`, and its file
   * (files[ref]) is the same object. Undefined: classified from scratch (or no longer kept, one tick on).
   */
  delta: ClassesDelta | undefined;

  /**
   * Thread CPU of this classification's "guest changed" check (the struct page array and the counters read again
   * after classifying, to prove the guest did not run meanwhile): xme's proof that its pause held, billed to the
   * instrument (experiment/tick-loop.ts), not to the mechanism, whose own pause needs no proof.
   */
  checkCpuMs = 0;

  /** Which classification of its guest this is (1, 2, …; the clock of FileInfo.changedAt); 0 for classes not made by a PageClassifier. */
  sequence = 0;

  kindOf(frame: number): PageKind {
    return PAGE_KINDS[this.kind[frame]!]!;
  }

  classOf(frame: number): PageClass {
    if (frame < 0 || frame >= this.frames) throw new RangeError(`frame ${frame} is outside guest ${this.guestId} (${this.frames} frames)`);
    const kind = this.kindOf(frame);
    const bits = this.bits[frame]!;
    switch (kind) {
      case 'free':
        return { kind, order: this.order[frame]!, head: this.head[frame]!, list: bits & FRAME_BITS.perCpu ? 'per-cpu' : 'buddy' };
      case 'pagecache':
      case 'shmem':
        return {
          kind,
          file: this.files[this.ref[frame]!]!,
          index: this.fileIndex[frame]!,
          dirty: (bits & FRAME_BITS.dirty) !== 0,
          writeback: (bits & FRAME_BITS.writeback) !== 0,
          compound: (bits & FRAME_BITS.compound) !== 0,
        };
      case 'anon':
        return {
          kind,
          ksm: (bits & FRAME_BITS.ksm) !== 0,
          compound: (bits & FRAME_BITS.compound) !== 0,
          head: this.head[frame]!,
          mapped: (bits & FRAME_BITS.unmapped) === 0,
        };
      case 'slab':
        return { kind, cache: this.caches[this.ref[frame]!]!, head: this.head[frame]! };
      case 'module-text':
        return { kind, module: this.modules[this.ref[frame]!]!, index: this.fileIndex[frame]! };
      case 'reserved':
        return { kind, memmap: (bits & FRAME_BITS.memmap) !== 0 };
      case 'unknown':
        return { kind, reason: UNKNOWN_REASONS[this.ref[frame]!]! };
      default:
        return { kind } as PageClass;
    }
  }

  /** Frames per class. */
  counts(): Record<PageKind, number> {
    const histogram = new Float64Array(PAGE_KINDS.length);
    const kind = this.kind;
    for (let i = 0; i < this.frames; i++) histogram[kind[i]!]!++;
    return Object.fromEntries(PAGE_KINDS.map((name, k) => [name, histogram[k]!])) as Record<PageKind, number>;
  }

  /** Frames whose bits include all of `mask`, of one class. */
  countWith(kind: PageKind, mask: number): number {
    let count = 0;
    const k = KIND[kind];
    for (let i = 0; i < this.frames; i++) if (this.kind[i] === k && (this.bits[i]! & mask) === mask) count++;
    return count;
  }

  unknownReasons(): Record<UnknownReason, number> {
    const counts = Object.fromEntries(UNKNOWN_REASONS.map((reason) => [reason, 0])) as Record<UnknownReason, number>;
    for (let i = 0; i < this.frames; i++) if (this.kind[i] === KIND.unknown) counts[UNKNOWN_REASONS[this.ref[i]!]!]++;
    return counts;
  }

  /** The frames of one class, ascending. */
  framesOf(kind: PageKind): number[] {
    const k = KIND[kind];
    const frames: number[] = [];
    for (let i = 0; i < this.frames; i++) if (this.kind[i] === k) frames.push(i);
    return frames;
  }
}

/** One line of the comparison with the kernel's own counters. */
export interface AgreementRow {
  what: string;
  /** Frames the classes give. */
  classified: number;
  /** What the kernel's counters say. */
  kernel: number;
  counter: string;
}

/** The classes against the kernel's own counters, read at the same pause. */
export function agreementWithKernel(classes: PageClasses): AgreementRow[] {
  const counts = classes.counts();
  const { zone, node } = classes.counters;
  const perCpu = classes.countWith('free', FRAME_BITS.perCpu);
  const unknown = classes.unknownReasons();
  const slab = node.NR_SLAB_RECLAIMABLE_B! + node.NR_SLAB_UNRECLAIMABLE_B!;
  // shmem pages are dirty by nature and never enter NR_FILE_DIRTY (shmem does no dirty accounting).
  const fileDirty = classes.countWith('pagecache', FRAME_BITS.dirty);
  const writeback = classes.countWith('pagecache', FRAME_BITS.writeback) + classes.countWith('shmem', FRAME_BITS.writeback);
  return [
    { what: 'free (buddy)', classified: counts.free - perCpu, kernel: zone.NR_FREE_PAGES!, counter: 'NR_FREE_PAGES' },
    { what: 'free (per-CPU lists)', classified: perCpu, kernel: classes.counters.perCpuFreePages, counter: 'Σ per_cpu_pages.count' },
    { what: 'page cache + shmem', classified: counts.pagecache + counts.shmem, kernel: node.NR_FILE_PAGES!, counter: 'NR_FILE_PAGES' },
    { what: 'shmem', classified: counts.shmem, kernel: node.NR_SHMEM!, counter: 'NR_SHMEM' },
    { what: 'file dirty', classified: fileDirty, kernel: node.NR_FILE_DIRTY!, counter: 'NR_FILE_DIRTY' },
    { what: 'writeback', classified: writeback, kernel: node.NR_WRITEBACK!, counter: 'NR_WRITEBACK' },
    // NR_ANON_MAPPED counts mapped pages: an anonymous page no process maps, not freed yet, is left out of it.
    { what: 'anon', classified: counts.anon - classes.countWith('anon', FRAME_BITS.unmapped), kernel: node.NR_ANON_MAPPED!, counter: 'NR_ANON_MAPPED' },
    { what: 'slab (PG_slab)', classified: counts.slab, kernel: slab, counter: 'NR_SLAB_RECLAIMABLE_B + NR_SLAB_UNRECLAIMABLE_B' },
    // 6.1 accounts large kmalloc (a plain compound page, no PG_slab) as slab: those are among 'unknown: compound'.
    { what: 'slab + unmarked compound', classified: counts.slab + unknown.compound, kernel: slab, counter: 'NR_SLAB_RECLAIMABLE_B + NR_SLAB_UNRECLAIMABLE_B' },
    { what: 'page tables', classified: counts.pagetable, kernel: node.NR_PAGETABLE!, counter: 'NR_PAGETABLE' },
  ];
}

const hex = (value: bigint | number) => `0x${value.toString(16)}`;

/** _mapcount of a page no process maps (−1, read as an unsigned 32-bit word). */
const UNMAPPED_COUNT = 0xffffffff;

/** The zone of the frames just checked: the key of their zone and node bits, and where that zone's span ends. */
interface ZoneRun {
  key: number;
  end: number;
}

interface ZoneCheck {
  keyShift: number;
  run: ZoneRun;
  /** Frames no zone spans, with their flags' high word: (pfn, high) pairs. */
  offZone: number[];
  /** The zone of a frame that left the current run; updates the run or records the frame. */
  lookUp(pfn: number, high: number): void;
  /** Refuses the frames no zone spans, unless reserved outside every zone. */
  finish(kind: Uint8Array): void;
}

/** Loaded modules' text as one tick found it (PageClassifier.moduleText). */
interface ModuleText {
  names: string[];
  /** Per text page: its frame, its module (into names), its page in the module's text. */
  frames: number[];
  module: number[];
  page: number[];
  signature: string;
}

/** Bits 53–63 of a kernel virtual address (all set), as bits 21–31 of its upper half; and the 21 bits below them. */
const KERNEL_HIGH_BITS = 0x7ff;
const LOW_21_BITS = 0x1f_ffff;

/** What the next tick starts from (PageClassifier.classify): the classes and what outside the array they rest on. */
interface LastTick {
  classes: PageClasses;
  perCpu: Uint8Array;
  /** The frames on a per-CPU list (perCpu ≠ 0), as a list: the next tick compares only these and its own. */
  perCpuListed: number[];
  moduleText: ModuleText;
  zones: string;
  ranges: string;
}

/** The same facts of a file (FileInfo: every field), whatever else in its inode moved. */
/**
 * `next`, the entry that replaces `known` (same address_space, facts changed), stamped with this classification
 * (FileInfo.changedAt) when it is the same file changing — being written — rather than another file whose inode
 * took the freed one's address.
 */
function replacing(known: FileInfo | undefined, next: FileInfo, sequence: number): FileInfo {
  if (known && known.device === next.device && known.fsType === next.fsType && known.ino === next.ino && known.generation === next.generation)
    next.changedAt = sequence;
  return next;
}

function sameFile(a: FileInfo, b: FileInfo): boolean {
  return (
    a.mapping === b.mapping &&
    a.inode === b.inode &&
    a.superBlock === b.superBlock &&
    a.device === b.device &&
    a.deviceName === b.deviceName &&
    a.fsType === b.fsType &&
    a.ino === b.ino &&
    a.generation === b.generation &&
    a.mode === b.mode &&
    a.size === b.size &&
    a.mtime.sec === b.mtime.sec &&
    a.mtime.nsec === b.mtime.nsec &&
    a.ctime.sec === b.ctime.sec &&
    a.ctime.nsec === b.ctime.nsec
  );
}

/** What a file's pages take from its super block. */
type SuperBlockInfo = Pick<FileInfo, 'device' | 'deviceName' | 'fsType'>;

export interface PageClassifierOptions {
  /** A profile made already (else from the image's vmlinuz, else the guest's BTF; cached). */
  profile?: LayoutProfile;
  /** The booted vmlinuz (default the guest image's, where the guest has one). */
  vmlinuz?: string;
  /** The cache folder for profiles (default harness/util/paths.ts cacheDir()). */
  cache?: string;
}

function guestVmlinuz(guest: Guest): string | undefined {
  try {
    return guest.image.path('vmlinuz');
  } catch {
    return undefined; // an in-memory stand-in has no image
  }
}

/**
 * Classifies one guest's frames, tick after tick. open() does the one-off checks (5-level paging, the layout
 * profile from BTF and the series rules against each other, the BTF in guest memory against the profile's,
 * the guest's VMCOREINFO against both); classify() reads struct page at a pause.
 */
export class PageClassifier {
  private constructor(
    readonly guest: Guest,
    readonly memory: KernelMemory,
    readonly profile: LayoutProfile,
    readonly rules: SeriesRules,
  ) {}

  static open(guest: Guest, kernel: KernelInfo, placement: KernelPlacement, options: PageClassifierOptions = {}): PageClassifier {
    const memory = KernelMemory.open(guest, kernel, placement);
    const rules = rulesForKernel(guest.id, kernel.version);
    const profile = options.profile ?? layoutProfile(guest, kernel, placement, options.vmlinuz ?? guestVmlinuz(guest), options.cache);
    const disagreements = rulesDisagreeWithBtf(rules, profile);
    if (disagreements.length > 0)
      throw new PageClassRefusal(guest.id, 'series rules', `the ${rules.series} rules disagree with the kernel's BTF: ${disagreements.join('; ')}`);
    if (profile.data.kernel.release !== kernel.version.release || profile.data.kernel.buildTag !== kernel.version.buildTag) {
      throw new PageClassRefusal(
        guest.id,
        'layout profile',
        `the profile is of ${profile.data.kernel.release} ${profile.data.kernel.buildTag}, the guest runs ${kernel.version.release} ${kernel.version.buildTag}`,
      );
    }
    const running = sha256(readGuestBtf(guest, kernel, placement));
    if (running !== profile.data.btf.sha256) {
      throw new PageClassRefusal(
        guest.id,
        'BTF',
        `the BTF in the running kernel (sha256 ${running.slice(0, 12)}…) is not the one the layout profile was made from (${profile.data.btf.sha256.slice(0, 12)}…)`,
      );
    }
    checkVmcoreinfo(memory, { profile, rules, release: kernel.version.release });
    return new PageClassifier(guest, memory, profile, rules);
  }

  /**
   * The struct page array as last verified, brought up to date in place each tick (memmap-delta.ts): one
   * buffer per guest, word-aligned so the classification reads it as 32-bit words.
   */
  private memmapCopy: Buffer | undefined;
  /** What the last tick that succeeded left for the next to start from; dropped by any refusal. */
  private last: LastTick | undefined;
  /** Classifications that succeeded so far (PageClasses.sequence). */
  private sequence = 0;
  /**
   * Files and slab caches keep their index from tick to tick (a frame classified at an earlier tick refers to
   * them by it): address_space → index into the files table; kmem_cache → index into the cache names.
   */
  private fileIndexOf = new Map<bigint, number>();
  private files: FileInfo[] = [];
  /** Per file, its inode's bytes as last read: a file kept from the tick before is read again only if they changed. */
  private inodes: Buffer[] = [];
  /**
   * Per file (index as files), how many page-cache and shmem frames refer to it as of the last tick: the files
   * whose inode is checked again at the next tick are those with frames, found without a pass over every frame.
   */
  private fileFrames: Int32Array = new Int32Array(0);
  private cacheIndexOf = new Map<bigint, number>();
  private caches: string[] = [];
  /** 0, 1, 2, …: the head column's starting point. */
  private identity: Uint32Array | undefined;
  /** Frames the last classification redid (all of them at a first or full one): for the bench and the notes. */
  lastRedone = 0;

  /** Where the struct pages of frames [0, frames) are in guest memory (vmemmap is mapped with 2 MiB pages: a few ranges). */
  private memmapRanges(frames: number): MemmapRange[] {
    const stride = this.profile.size('page');
    const length = frames * stride;
    const ranges: MemmapRange[] = [];
    let at = 0;
    while (at < length) {
      const virtual = this.memory.vmemmapBase + BigInt(at);
      const { physical, bytes } = this.memory.mapping(virtual, `struct page of frame ${Math.floor(at / stride)} (vmemmap)`);
      const take = Math.min(bytes, length - at);
      ranges.push({ physical, length: take, at });
      at += take;
    }
    return ranges;
  }

  /**
   * Per files-table index, the guest-physical address of its inode where the inode lies in the direct map and holds
   * the entry's address_space (−1 otherwise): refreshFiles compares it there, with no translation per tick.
   */
  private inodeAt: number[] = [];
  /** The entry each inodeAt value was found for (an entry replaced since is looked at again). */
  private inodeAtOf: (FileInfo | undefined)[] = [];

  /** The frames that hold the struct page array (made again only when its ranges move). */
  private backing: { key: string; frames: Set<number> } | undefined;

  private backingFrames(ranges: readonly MemmapRange[], key: string): Set<number> {
    if (this.backing?.key === key) return this.backing.frames;
    const frames = new Set<number>();
    for (const range of ranges) {
      const first = Number(range.physical / BigInt(PAGE_SIZE));
      const lastFrame = Number((range.physical + BigInt(range.length) - 1n) / BigInt(PAGE_SIZE));
      for (let frame = first; frame <= lastFrame; frame++) frames.add(frame);
    }
    this.backing = { key, frames };
    return frames;
  }

  /** Struct pages that differ now from the copy (compared in guest memory, nothing copied again); 0 if none. */
  private changedSince(memmap: Buffer, ranges: readonly MemmapRange[]): number {
    const stride = this.profile.size('page');
    let differing = 0;
    for (const range of ranges) {
      if (this.memory.equalsPhysical(range.physical, range.length, memmap, range.at)) continue;
      const now = this.memory.physicalBytes(range.physical, range.length, 'vmemmap');
      for (let i = 0; i < range.length; i += stride) if (now.compare(memmap, range.at + i, range.at + i + stride, i, i + stride) !== 0) differing++;
    }
    return differing;
  }

  /** Forget every earlier tick: the next classification reads and classifies every frame (the bench's cold case). */
  forget(): void {
    this.last = undefined;
    this.fileIndexOf = new Map();
    this.files = [];
    this.inodes = [];
    this.fileFrames = new Int32Array(0);
    this.cacheIndexOf = new Map();
    this.caches = [];
    this.inodeAt = [];
    this.inodeAtOf = [];
  }

  /**
   * The classes of every frame now. The guest must be paused (a guest that changes meanwhile is refused).
   * Incremental after a tick that succeeded: only the frames whose struct page changed since (with the blocks
   * they were in) and the frames whose per-CPU or module membership changed are classified again
   * (memmap-delta.ts); the rest keep their class. Every check below holds for the frames it classifies; the
   * frames it keeps passed the same checks on the same bytes.
   */
  classify(): PageClasses {
    const { guest, memory, profile, rules } = this;
    const refuse = (check: string, detail: string): never => {
      throw new PageClassRefusal(guest.id, check, detail);
    };
    const frames = guest.memoryPages;
    const sequence = this.sequence + 1;
    const stride = profile.size('page');
    if (stride !== 64) refuse('layout profile', `struct page is ${stride} bytes`);
    const topology = readTopology(memory, profile);
    const countersBefore = readKernelCounters(memory, profile, topology);
    const ranges = this.memmapRanges(frames);
    const zoneSpans = JSON.stringify(topology.nodes.map((node) => node.zones.map((zone) => [zone.startPfn, zone.spannedPages])));
    const rangeKey = ranges.map((r) => `${r.physical}+${r.length}`).join(',');
    const length = frames * stride;
    // Only a tick that succeeded counts as a starting point, and only if the memory layout is the same.
    const last =
      this.last?.classes.frames === frames && this.last.zones === zoneSpans && this.last.ranges === rangeKey && this.memmapCopy?.length === length
        ? this.last
        : undefined;
    this.last = undefined;
    if (!last) this.forget();
    const changed = new Uint8Array(frames);
    // The changed frames as a list too (after the first tick, a few hundred or thousand of 131,072 per 512 MiB).
    const changedList: number[] = [];
    if (!last || !this.memmapCopy) {
      this.memmapCopy = Buffer.from(new ArrayBuffer(length));
      for (const range of ranges) memory.copyPhysical(range.physical, range.length, this.memmapCopy, range.at, 'vmemmap');
      changed.fill(1);
    } else refreshCopy(memory, ranges, this.memmapCopy, stride, changed, changedList);
    const memmap = this.memmapCopy;
    const backing = this.backingFrames(ranges, rangeKey);
    // The array as 32-bit words (it is word-aligned, every field read here is 4-aligned): typed-array reads, no Buffer calls per field.
    const words = new Uint32Array(memmap.buffer, memmap.byteOffset, memmap.length >>> 2);
    const signed = new Int32Array(memmap.buffer, memmap.byteOffset, memmap.length >>> 2);
    const WORDS = stride >>> 2;

    const offsets = {
      flags: profile.offset('page', 'flags'),
      compoundHead: profile.offset('page', 'compound_head'),
      compoundOrder: profile.offset('page', 'compound_order'),
      mapping: profile.offset('page', 'mapping'),
      index: profile.offset('page', 'index'),
      private: profile.offset('page', 'private'),
      pageType: profile.offset('page', 'page_type'),
      refcount: profile.offset('page', '_refcount'),
      slabCache: profile.offset('slab', 'slab_cache'),
      pcpList: profile.offset('page', 'pcp_list'),
    };
    const flag = (name: keyof SeriesRules['pageFlags']) => 1 << rules.pageFlags[name];
    const [SLAB, RESERVED, HEAD, DIRTY, WRITEBACK, SWAPBACKED] = [
      flag('PG_slab'),
      flag('PG_reserved'),
      flag('PG_head'),
      flag('PG_dirty'),
      flag('PG_writeback'),
      flag('PG_swapbacked'),
    ];
    const { base: typeBase } = rules.pageType;
    const typed = (pageType: number, bit: number) => (pageType & (typeBase | bit)) >>> 0 === typeBase;
    const vmemmapHigh = Number(memory.vmemmapBase >> 32n);
    const vmemmapLow = Number(memory.vmemmapBase & 0xffffffffn);
    /** Frame of a struct page address given as two 32-bit halves, or −1 if it is not one of [0, frames). */
    const frameOfStructPage = (high: number, low: number): number => {
      const offset = (high - vmemmapHigh) * 2 ** 32 + (low - vmemmapLow);
      if (offset < 0 || offset % stride !== 0 || offset / stride >= frames) return -1;
      return offset / stride;
    };

    // What lies outside the array is read in full every tick; a frame whose membership changed is redone.
    const { onList: perCpu, listed: perCpuListed } = this.perCpuFreeLists(topology, memmap, frameOfStructPage, offsets.pcpList, frames);
    const moduleText = this.moduleText();
    const markChanged = (frame: number) => {
      if (changed[frame] === 1) return;
      changed[frame] = 1;
      changedList.push(frame);
    };
    if (last) {
      // A frame whose membership differs is on this tick's lists or on the last's: only those are compared (a few
      // hundred frames; the lists change in many places between ticks, a pass over the arrays cost 0.5 ms a guest).
      for (const frame of perCpuListed) if (perCpu[frame] !== last.perCpu[frame]) markChanged(frame);
      for (const frame of last.perCpuListed) if (perCpu[frame] !== last.perCpu[frame]) markChanged(frame);
      if (moduleText.signature !== last.moduleText.signature) {
        for (const frame of last.moduleText.frames) markChanged(frame);
        for (const frame of moduleText.frames) markChanged(frame);
      }
    }
    const redo = last ? new Uint8Array(frames) : changed;
    // The frames to classify, ascending: a list after a tick that succeeded; every frame otherwise.
    const redoList = last ? framesToRedo(changedList, last.classes, redo) : undefined;
    const redone = redoList ? redoList.length : frames;
    const count = redoList ? redoList.length : frames;

    if (this.identity?.length !== frames) this.identity = Uint32Array.from({ length: frames }, (_, i) => i);
    const kind = last ? last.classes.kind.slice() : new Uint8Array(frames);
    const bits = last ? last.classes.bits.slice() : new Uint8Array(frames);
    const order = last ? last.classes.order.slice() : new Uint8Array(frames);
    // Every frame its own head, by one copy; free blocks and tails overwrite theirs.
    const head = last ? last.classes.head.slice() : this.identity.slice();
    const ref = last ? last.classes.ref.slice() : new Int32Array(frames).fill(-1);
    const fileIndex = last ? last.classes.fileIndex.slice() : new Float64Array(frames).fill(Number.NaN);
    // Files and caches seen by frames classified this tick are read anew (their frames' entries replaced).
    const files = this.files.slice();
    const inodes = this.inodes.slice();
    const caches = this.caches.slice();
    const readThisTick = new Map<bigint, number>();
    const readThisTickByNumber = new Map<number, number>();
    const cachesThisTick = new Map<bigint, number>();
    // Per tick: a super block unmounted since may have left its address to another.
    const superBlocks = new Map<bigint, SuperBlockInfo>();
    const modules = moduleText.names;

    const { layout } = memory.kernel;
    const pfnOf = (address: bigint, roundUp = false) => {
      const physical = memory.placement.physicalBase + (address - layout.text);
      return Number((physical + (roundUp ? BigInt(PAGE_SIZE) - 1n : 0n)) / BigInt(PAGE_SIZE));
    };
    const text = [pfnOf(layout.code.start), pfnOf(layout.code.end, true)];
    const rodata = [pfnOf(layout.rodata.start), pfnOf(layout.rodata.end, true)];
    const image = [pfnOf(layout.text), pfnOf(layout.end, true)];

    const buddyMask = (typeBase | rules.pageType.buddy) >>> 0;
    const w = {
      flags: offsets.flags >>> 2,
      compoundHead: offsets.compoundHead >>> 2,
      refcount: offsets.refcount >>> 2,
      pageType: offsets.pageType >>> 2,
      private: offsets.private >>> 2,
      mapping: offsets.mapping >>> 2,
    };
    for (const [field, offset] of Object.entries(offsets)) {
      if (field !== 'compoundOrder' && offset % 4 !== 0) refuse('layout profile', `page.${field} is at byte ${offset}, not 4-aligned`);
    }
    const zones = this.zoneCheck(topology);
    const { keyShift, run: zoneRun } = zones;
    const flagsHigh = w.flags + 1;
    // Frames below `cursor` were filled already, as part of a free block classified at its head.
    let cursor = 0;
    // The free blocks filled from their head, as [start, end) pairs: frames in them not in the redo list changed too.
    const filled: number[] = [];
    for (let i = 0; i < count; i++) {
      const pfn = redoList ? redoList[i]! : i;
      if (pfn < cursor) continue;
      // From scratch: the frame's columns as a first classification starts them.
      kind[pfn] = 0;
      bits[pfn] = 0;
      order[pfn] = 0;
      head[pfn] = pfn;
      ref[pfn] = -1;
      fileIndex[pfn] = Number.NaN;
      const o = pfn * stride;
      const b = pfn * WORDS;
      const flags = words[b + w.flags]!;
      const high = words[b + flagsHigh]!;
      if (high >>> keyShift !== zoneRun.key || pfn >= zoneRun.end) zones.lookUp(pfn, high);
      const compoundLow = words[b + w.compoundHead]!;
      const refcount = signed[b + w.refcount]!;
      const pageType = words[b + w.pageType]!;
      if (compoundLow & rules.tailBit) {
        const headFrame = frameOfStructPage(words[b + w.compoundHead + 1]!, compoundLow - rules.tailBit);
        if (headFrame < 0 || headFrame >= pfn)
          refuse('compound head', `frame ${hex(pfn)} is a tail whose compound_head does not point to a struct page before it`);
        head[pfn] = headFrame;
        kind[pfn] = PENDING_TAIL;
        continue;
      }
      if (typed(pageType, rules.pageType.buddy) || typed(pageType, rules.pageType.guard)) {
        const blockOrder = words[b + w.private]!;
        if (blockOrder >= rules.maxOrder || pfn % 2 ** blockOrder !== 0 || pfn + 2 ** blockOrder > frames) {
          refuse('free block', `frame ${hex(pfn)} is a buddy head of order ${blockOrder}, which does not fit (MAX_ORDER ${rules.maxOrder}, ${frames} frames)`);
        }
        if (refcount !== 0) refuse('free block', `buddy head ${hex(pfn)} has refcount ${refcount}`);
        const end = pfn + 2 ** blockOrder;
        // The rest of the block in one tight pass (most of a first tick's frames): the head's claim holds only if
        // every frame in it is free too — refcount 0, no compound tail, no buddy head of its own.
        for (let inside = pfn + 1; inside < end; inside++) {
          const q = inside * WORDS;
          const insideHigh = words[q + flagsHigh]!;
          if (insideHigh >>> keyShift !== zoneRun.key || inside >= zoneRun.end) zones.lookUp(inside, insideHigh);
          if (signed[q + w.refcount] !== 0 || words[q + w.compoundHead]! & rules.tailBit || (words[q + w.pageType]! & buddyMask) >>> 0 === typeBase) {
            const rc = signed[q + w.refcount]!;
            const pt = words[q + w.pageType]!;
            refuse(
              'free block',
              `the free block of order ${blockOrder} at frame ${hex(pfn)} holds frame ${hex(inside)} with refcount ${rc}` +
                `${words[q + w.compoundHead]! & rules.tailBit ? ', a compound tail' : ''}${typed(pt, rules.pageType.buddy) ? ', a buddy head of its own' : ''}`,
            );
          }
        }
        // The block as it is now, whatever its frames were at the last tick.
        kind.fill(KIND.free, pfn, end);
        order.fill(blockOrder, pfn, end);
        head.fill(pfn, pfn, end);
        bits.fill(0, pfn, end);
        ref.fill(-1, pfn, end);
        fileIndex.fill(Number.NaN, pfn, end);
        if (redoList) filled.push(pfn, end);
        cursor = end;
        continue;
      }
      if (typed(pageType, rules.pageType.table)) {
        kind[pfn] = KIND.pagetable;
        continue;
      }
      if (typed(pageType, rules.pageType.offline)) {
        kind[pfn] = KIND.reserved;
        continue;
      }
      if (flags & HEAD) {
        bits[pfn] = bits[pfn]! | FRAME_BITS.compound;
        order[pfn] = memmap[o + stride + offsets.compoundOrder]!;
      }
      if (flags & SLAB) {
        kind[pfn] = KIND.slab;
        const cache = memmap.readBigUInt64LE(o + offsets.slabCache);
        let index = cachesThisTick.get(cache);
        if (index === undefined) {
          index = this.cacheIndex(cache, pfn, caches);
          cachesThisTick.set(cache, index);
        }
        ref[pfn] = index;
        continue;
      }
      if (flags & RESERVED) {
        if (pfn >= image[0]! && pfn < image[1]!) {
          kind[pfn] =
            pfn >= text[0]! && pfn < text[1]! ? KIND['kernel-text'] : pfn >= rodata[0]! && pfn < rodata[1]! ? KIND['kernel-rodata'] : KIND['kernel-data'];
        } else {
          kind[pfn] = KIND.reserved;
          if (backing.has(pfn)) bits[pfn] = bits[pfn]! | FRAME_BITS.memmap;
        }
        continue;
      }
      if (pfn >= text[0]! && pfn < text[1]!) refuse('kernel text', `frame ${hex(pfn)} of [_text, _etext) is not PG_reserved (flags ${hex(flags)})`);
      const mappingLow = words[b + w.mapping]!;
      const mappingHigh = words[b + w.mapping + 1]!;
      if (mappingLow === 0 && mappingHigh === 0) {
        kind[pfn] = KIND.unknown;
        ref[pfn] = refcount === 0 ? UNKNOWN.unowned : flags & HEAD ? UNKNOWN.compound : UNKNOWN.allocated;
        continue;
      }
      const low = mappingLow & rules.mapping.mask;
      if (low === rules.mapping.anon || low === rules.mapping.ksm) {
        kind[pfn] = KIND.anon;
        if (low === rules.mapping.ksm) bits[pfn] = bits[pfn]! | FRAME_BITS.ksm;
        // _mapcount (page_type's word) −1 on a small page: no process maps it; NR_ANON_MAPPED has let it go.
        // A compound's mappings are counted in its first tail, not here: it is taken as mapped.
        if (!(flags & HEAD) && pageType === UNMAPPED_COUNT) bits[pfn] = bits[pfn]! | FRAME_BITS.unmapped;
        continue;
      }
      if (low === rules.mapping.movable) {
        kind[pfn] = KIND.unknown;
        ref[pfn] = UNKNOWN.movable;
        continue;
      }
      // Looked up first by a number: a kernel address has bits 53–63 set, so bits 0–52 tell it exactly (a BigInt
      // per frame cost more than the rest of a page-cache frame's classification). Any other value takes the BigInt way.
      const numeric = mappingHigh >>> 21 === KERNEL_HIGH_BITS ? (mappingHigh & LOW_21_BITS) * 2 ** 32 + mappingLow : -1;
      let file = numeric >= 0 ? readThisTickByNumber.get(numeric) : undefined;
      const mapping = file === undefined ? (BigInt(mappingHigh) << 32n) | BigInt(mappingLow) : 0n;
      if (file === undefined) file = readThisTick.get(mapping);
      if (file === undefined) {
        const read = this.fileOf(mapping, `frame ${hex(pfn)}`, superBlocks);
        file = -1;
        if (read) {
          file = this.fileIndexOf.get(mapping) ?? -1;
          if (file < 0) this.fileIndexOf.set(mapping, (file = files.length));
          // A file whose facts are unchanged keeps its entry (the same object: PageClasses.delta's consumers see
          // the file unchanged); its inode's bytes are kept as read now (reference counts and lists move often).
          const known = files[file];
          if (!known || !sameFile(known, read.info)) files[file] = replacing(known, read.info, sequence);
          inodes[file] = read.inode;
        }
        readThisTick.set(mapping, file);
        if (numeric >= 0) readThisTickByNumber.set(numeric, file);
      }
      if (file < 0) {
        kind[pfn] = KIND.unknown;
        ref[pfn] = UNKNOWN['no-host'];
        continue;
      }
      kind[pfn] = flags & SWAPBACKED ? KIND.shmem : KIND.pagecache;
      ref[pfn] = file;
      fileIndex[pfn] = Number(memmap.readBigUInt64LE(o + offsets.index));
      if (flags & DIRTY) bits[pfn] = bits[pfn]! | FRAME_BITS.dirty;
      if (flags & WRITEBACK) bits[pfn] = bits[pfn]! | FRAME_BITS.writeback;
    }

    // Tails take their head's class (a head comes first: the tail check above demands it). Only frames
    // classified this tick are pending; a head not classified again keeps its class, on unchanged bytes.
    for (let i = 0; i < count; i++) {
      const pfn = redoList ? redoList[i]! : i;
      if (kind[pfn] !== PENDING_TAIL) continue;
      const headFrame = head[pfn]!;
      const headFlags = memmap.readUInt32LE(headFrame * stride + offsets.flags);
      const headOrder = memmap[headFrame * stride + stride + offsets.compoundOrder]!;
      if (!(headFlags & HEAD) || pfn - headFrame >= 2 ** headOrder) {
        refuse(
          'compound head',
          `tail ${hex(pfn)} points to frame ${hex(headFrame)}, which is ${headFlags & HEAD ? `a head of order ${headOrder} only` : 'no compound head'}`,
        );
      }
      kind[pfn] = kind[headFrame]!;
      ref[pfn] = ref[headFrame]!;
      order[pfn] = headOrder;
      bits[pfn] = (bits[headFrame]! & ~FRAME_BITS.memmap) | FRAME_BITS.tail | FRAME_BITS.compound;
      if (kind[pfn] === KIND.pagecache || kind[pfn] === KIND.shmem) fileIndex[pfn] = fileIndex[headFrame]! + (pfn - headFrame);
    }

    // Per-CPU free lists and module text: marked on the frames classified this tick; a frame kept has the
    // membership it had (a change of membership redid it).
    for (let i = 0; i < count; i++) {
      const frame = redoList ? redoList[i]! : i;
      const listOrder = perCpu[frame]! - 1;
      if (listOrder < 0) continue;
      if (kind[frame] !== KIND.unknown || ref[frame] !== UNKNOWN.unowned) {
        refuse('per-CPU list', `frame ${hex(frame)} is on a per-CPU free list (order ${listOrder}) but reads as ${PAGE_KINDS[kind[frame]!] ?? 'a tail'}`);
      }
      kind[frame] = KIND.free;
      bits[frame] = bits[frame]! | FRAME_BITS.perCpu;
      order[frame] = listOrder;
      head[frame] = frame - (frame % 2 ** listOrder);
      ref[frame] = -1;
    }
    moduleText.frames.forEach((pfn, i) => {
      if (redo[pfn] !== 1) return;
      if (kind[pfn] !== KIND.unknown)
        refuse('modules', `frame ${hex(pfn)} of module ${modules[moduleText.module[i]!]}'s text reads as ${PAGE_KINDS[kind[pfn]!]}`);
      kind[pfn] = KIND['module-text'];
      ref[pfn] = moduleText.module[i]!;
      fileIndex[pfn] = moduleText.page[i]!;
    });
    zones.finish(kind);
    const fileFrames = this.countFileFrames(kind, ref, files.length, last && redoList ? { since: last.classes, list: redoList, redo, filled } : undefined);
    // A kept frame's file: its inode may have changed with no page of it changing (times, size): compared with
    // the inode as last read, and read again if it differs.
    if (last) this.refreshFiles(fileFrames, files, inodes, readThisTick, superBlocks, sequence);

    // The guest must not have changed while it was read: struct pages and counters read again must be the same.
    const checkFrom = threadCpuNs();
    const differing = this.changedSince(memmap, ranges);
    if (differing > 0) refuse('guest changed', `${differing} struct pages changed while the classes were read (pause the guest first)`);
    const countersAfter = readKernelCounters(memory, profile, topology);
    if (JSON.stringify(countersAfter) !== JSON.stringify(countersBefore))
      refuse('guest changed', 'its page counters changed while the classes were read (pause the guest first)');
    const checkCpuMs = Number(threadCpuNs() - checkFrom) / 1e6;
    this.files = files;
    this.inodes = inodes;
    this.fileFrames = fileFrames;
    this.caches = caches;
    this.lastRedone = redone;
    const classes = new PageClasses(
      guest.id,
      frames,
      kind,
      bits,
      order,
      head,
      ref,
      fileIndex,
      files,
      caches,
      modules,
      countersBefore,
      topology,
      last && redoList ? { since: last.classes, redo, list: redoList, redone } : undefined,
    );
    classes.checkCpuMs = checkCpuMs;
    classes.sequence = this.sequence = sequence;
    this.last = { classes, perCpu, perCpuListed, moduleText, zones: zoneSpans, ranges: rangeKey };
    return classes;
  }

  /**
   * Page-cache and shmem frames per file: counted over every frame from scratch; after a tick that succeeded, the
   * last tick's counts moved by the frames whose class may have changed (the redo list and the free blocks filled
   * from a head), each taken out under its old class and put in under its new one.
   */
  private countFileFrames(
    kind: Uint8Array,
    ref: Int32Array,
    files: number,
    changes: { since: PageClasses; list: Int32Array; redo: Uint8Array; filled: readonly number[] } | undefined,
  ): Int32Array {
    const counts = new Int32Array(files);
    const isFile = (k: number) => k === KIND.pagecache || k === KIND.shmem;
    if (!changes) {
      for (let frame = 0; frame < kind.length; frame++) if (isFile(kind[frame]!)) counts[ref[frame]!]!++;
      return counts;
    }
    counts.set(this.fileFrames.subarray(0, Math.min(files, this.fileFrames.length)));
    const { since, list, redo, filled } = changes;
    const move = (frame: number) => {
      if (isFile(since.kind[frame]!)) counts[since.ref[frame]!]!--;
      if (isFile(kind[frame]!)) counts[ref[frame]!]!++;
    };
    for (let i = 0; i < list.length; i++) move(list[i]!);
    for (let i = 0; i < filled.length; i += 2) for (let frame = filled[i]!; frame < filled[i + 1]!; frame++) if (redo[frame] !== 1) move(frame);
    return counts;
  }

  /** The files of kept page-cache and shmem frames, brought up to date (entries replaced where their inode changed). */
  private refreshFiles(
    fileFrames: Int32Array,
    files: FileInfo[],
    inodes: Buffer[],
    readThisTick: Map<bigint, number>,
    superBlocks: Map<bigint, SuperBlockInfo>,
    sequence: number,
  ): void {
    const { memory, profile } = this;
    const checked = new Uint8Array(files.length);
    for (const index of readThisTick.values()) if (index >= 0) checked[index] = 1;
    const hostOffset = BigInt(profile.offset('address_space', 'host'));
    const all = this.guest.memoryView?.all();
    for (let index = 0; index < files.length; index++) {
      if (fileFrames[index]! <= 0 || checked[index] === 1) continue;
      const file = files[index]!;
      const copy = inodes[index]!;
      // Most files: an inode in the direct map holding its address_space, compared in place at a known address.
      if (this.inodeAtOf[index] !== file) {
        const inside = file.mapping >= file.inode && file.mapping + hostOffset + 8n <= file.inode + BigInt(copy.length);
        this.inodeAt[index] = inside ? memory.directMapPhysical(file.inode, copy.length) : -1;
        this.inodeAtOf[index] = file;
      }
      const at = this.inodeAt[index]!;
      if (at >= 0 && memory.equalsAt(at, copy, all)) continue;
      const what = `the address_space ${hex(file.mapping)} of ${fileFrames[index]} page-cache frames`;
      // The address_space of a regular file lies inside its inode (i_data): the inode's bytes then cover its host too.
      const inside = file.mapping >= file.inode && file.mapping + hostOffset + 8n <= file.inode + BigInt(copy.length);
      const sameHost = inside || memory.u64(file.mapping + hostOffset, what) === file.inode;
      if (sameHost && memory.equalsVirtual(file.inode, copy)) continue;
      const read = this.fileOf(file.mapping, `a file of ${fileFrames[index]} page-cache frames`, superBlocks);
      if (!read) throw new PageClassRefusal(this.guest.id, 'page cache', `${what} lost its host inode`);
      if (!sameFile(file, read.info)) files[index] = replacing(file, read.info, sequence);
      inodes[index] = read.inode;
    }
  }

  /** Index of a slab cache's name in `names`, read at the first frame of the cache classified this tick (a destroyed cache's address may be reused). */
  private cacheIndex(cache: bigint, pfn: number, names: string[]): number {
    const namePointer = this.memory.u64(cache + BigInt(this.profile.offset('kmem_cache', 'name')), `slab cache of frame ${hex(pfn)}`);
    const name = this.memory.cString(namePointer, `slab cache name of frame ${hex(pfn)}`);
    let index = this.cacheIndexOf.get(cache);
    if (index === undefined) this.cacheIndexOf.set(cache, (index = names.length));
    names[index] = name;
    return index;
  }

  /** The file behind an address_space (undefined if it has no host); inconsistent pointers are refused. */
  private fileOf(mapping: bigint, of: string, superBlocks: Map<bigint, SuperBlockInfo>): { info: FileInfo; inode: Buffer } | undefined {
    const { memory, profile } = this;
    const what = `the address_space of ${of}`;
    const inode = memory.u64(mapping + BigInt(profile.offset('address_space', 'host')), what);
    if (inode === 0n) return undefined;
    const bytes = memory.read(inode, profile.size('inode'), `the inode of ${of}`);
    const iMapping = bytes.readBigUInt64LE(profile.offset('inode', 'i_mapping'));
    if (iMapping !== mapping) {
      throw new PageClassRefusal(
        this.guest.id,
        'page cache',
        `${of}'s address_space ${hex(mapping)} has host inode ${hex(inode)}, whose i_mapping is ${hex(iMapping)}`,
      );
    }
    const superBlock = bytes.readBigUInt64LE(profile.offset('inode', 'i_sb'));
    let sb = superBlocks.get(superBlock);
    if (!sb) {
      sb = this.superBlockOf(superBlock, of);
      superBlocks.set(superBlock, sb);
    }
    const time = (member: 'i_mtime' | 'i_ctime') => {
      const at = profile.offset('inode', member);
      return {
        sec: Number(bytes.readBigInt64LE(at + profile.offset('timespec64', 'tv_sec'))),
        nsec: Number(bytes.readBigInt64LE(at + profile.offset('timespec64', 'tv_nsec'))),
      };
    };
    const info: FileInfo = {
      mapping,
      inode,
      superBlock,
      ...sb,
      ino: Number(bytes.readBigUInt64LE(profile.offset('inode', 'i_ino'))),
      generation: bytes.readUInt32LE(profile.offset('inode', 'i_generation')),
      mode: bytes.readUInt16LE(profile.offset('inode', 'i_mode')),
      size: Number(bytes.readBigInt64LE(profile.offset('inode', 'i_size'))),
      mtime: time('i_mtime'),
      ctime: time('i_ctime'),
    };
    return { info, inode: bytes };
  }

  /** A super block's device and file system: read once per tick for all its files (a few super blocks, thousands of files). */
  private superBlockOf(superBlock: bigint, of: string): SuperBlockInfo {
    const { memory, profile } = this;
    const sb = memory.read(superBlock, profile.size('super_block'), `the super block of ${of}`);
    const fsTypePointer = sb.readBigUInt64LE(profile.offset('super_block', 's_type'));
    const fsType =
      fsTypePointer === 0n
        ? ''
        : memory.cString(memory.u64(fsTypePointer + BigInt(profile.offset('file_system_type', 'name')), 'file_system_type'), 'file system name');
    const idField = profile.field('super_block', 's_id');
    const id = sb.subarray(idField.offset, idField.offset + idField.size);
    return {
      device: sb.readUInt32LE(profile.offset('super_block', 's_dev')),
      deviceName: id.toString('latin1', 0, id.indexOf(0) < 0 ? id.length : id.indexOf(0)),
      fsType,
    };
  }

  /**
   * The frames on the per-CPU free lists, walked in full: per frame, its list's order + 1 (0: on none). The
   * classification then takes them as free where they read as unowned (refcount 0, no owner).
   */
  private perCpuFreeLists(
    topology: KernelTopology,
    memmap: Buffer,
    frameOfStructPage: (high: number, low: number) => number,
    pcpListOffset: number,
    frames: number,
  ): { onList: Uint8Array; listed: number[] } {
    const { memory, profile, rules } = this;
    const onList = new Uint8Array(frames);
    const listed: number[] = [];
    const lists = profile.field('per_cpu_pages', 'lists');
    const pcptypes = profile.enumValue('migratetype', 'MIGRATE_PCPTYPES');
    const lowOrderLists = pcptypes * (rules.pcp.costlyOrder + 1);
    const stride = profile.size('page');
    for (const node of topology.nodes) {
      for (const zone of node.zones) {
        if (zone.perCpuPageset === 0n || zone.presentPages === 0) continue;
        for (const cpu of topology.cpus) {
          const pcp = zone.perCpuPageset + cpu.offset;
          const bytes = memory.read(pcp, profile.size('per_cpu_pages'), `zone ${zone.name}'s per-CPU pages of CPU ${cpu.id}`);
          const count = bytes.readInt32LE(profile.offset('per_cpu_pages', 'count'));
          let pages = 0;
          for (let list = 0; list < (lists.count ?? 0); list++) {
            const listOrder = list < lowOrderLists ? Math.floor(list / pcptypes) : rules.pcp.thpOrder;
            const listHead = pcp + BigInt(lists.offset + list * lists.elementSize!);
            let next = bytes.readBigUInt64LE(lists.offset + list * lists.elementSize!);
            let steps = 0;
            while (next !== listHead) {
              if (++steps > frames) throw new PageClassRefusal(this.guest.id, 'per-CPU list', `zone ${zone.name} CPU ${cpu.id} list ${list} does not end`);
              const entry = next - BigInt(pcpListOffset);
              const pfn = frameOfStructPage(Number(entry >> 32n), Number(entry & 0xffffffffn));
              if (pfn < 0 || pfn % 2 ** listOrder !== 0 || pfn + 2 ** listOrder > frames) {
                throw new PageClassRefusal(
                  this.guest.id,
                  'per-CPU list',
                  `zone ${zone.name} CPU ${cpu.id} list ${list} links ${hex(next)}, not a struct page of an order-${listOrder} block`,
                );
              }
              for (let frame = pfn; frame < pfn + 2 ** listOrder; frame++) {
                if (onList[frame] !== 0) {
                  throw new PageClassRefusal(
                    this.guest.id,
                    'per-CPU list',
                    `frame ${hex(frame)} is on two per-CPU free lists (zone ${zone.name}, CPU ${cpu.id})`,
                  );
                }
                onList[frame] = listOrder + 1;
                listed.push(frame);
              }
              pages += 2 ** listOrder;
              next = memmap.readBigUInt64LE(pfn * stride + pcpListOffset);
            }
          }
          if (pages !== count) {
            throw new PageClassRefusal(
              this.guest.id,
              'per-CPU list',
              `zone ${zone.name} CPU ${cpu.id}: the lists hold ${pages} pages, its count says ${count}`,
            );
          }
        }
      }
    }
    return { onList, listed };
  }

  /**
   * Frames of loaded modules' text ([core_layout.base, + text_size)), through the page tables, in full every
   * tick: per text page its frame, its module (index into names) and its page in the module's text; the
   * signature tells two ticks' lists apart.
   */
  private moduleText(): ModuleText {
    const { memory, profile } = this;
    const head = memory.symbolVirtual('modules');
    const listOffset = BigInt(profile.offset('module', 'list'));
    const names: string[] = [];
    const frames: number[] = [];
    const module: number[] = [];
    const page: number[] = [];
    let next = memory.u64(head, 'modules');
    let steps = 0;
    while (next !== head) {
      if (++steps > 65536) throw new PageClassRefusal(this.guest.id, 'modules', 'the modules list does not end');
      const address = next - listOffset;
      const bytes = memory.read(address, profile.size('module'), 'a struct module');
      const nameField = profile.field('module', 'name');
      const nameBytes = bytes.subarray(nameField.offset, nameField.offset + nameField.size);
      const name = nameBytes.toString('latin1', 0, nameBytes.indexOf(0) < 0 ? nameBytes.length : nameBytes.indexOf(0));
      const base = bytes.readBigUInt64LE(profile.offset('module', 'core_layout.base'));
      const textSize = bytes.readUInt32LE(profile.offset('module', 'core_layout.text_size'));
      const index = names.push(name) - 1;
      for (let offset = 0; offset < textSize; offset += PAGE_SIZE) {
        frames.push(Number(memory.physical(base + BigInt(offset), `module ${name}'s text`) / BigInt(PAGE_SIZE)));
        module.push(index);
        page.push(offset / PAGE_SIZE);
      }
      next = bytes.readBigUInt64LE(Number(listOffset));
    }
    return { names, frames, module, page, signature: `${names.join('\0')}|${frames.join(',')}` };
  }

  /**
   * The zone and node numbers in page->flags must put each frame in a zone that spans it; checked inside the
   * classification's one pass over the struct pages (a second pass cost as much again: the array is memory-bound).
   * Frames come in long runs of one zone: a frame whose zone and node bits are its predecessor's, inside the span
   * that holds the predecessor, needs no look-up (ZoneRun). A frame no zone spans is kept for finishZoneCheck.
   */
  private zoneCheck(topology: KernelTopology): ZoneCheck {
    const { zoneShift, zoneBits, nodeShift, nodeBits } = this.rules.flagsLayout;
    if (zoneShift < 32 || nodeShift < 32) throw new XmeError('series rules: zone and node bits below bit 32 are not read here');
    const zones = new Map(topology.nodes.flatMap((node) => node.zones.map((zone) => [node.id * 64 + zone.index, zone] as const)));
    // Every zone and node bit is at or above the lower of the two shifts: the key holds both (more bits only shorten runs).
    const keyShift = Math.min(zoneShift, nodeShift) - 32;
    const run: ZoneRun = { key: -1, end: -1 };
    const offZone: number[] = [];
    return {
      keyShift,
      run,
      offZone,
      lookUp: (pfn, high) => {
        const zone = zones.get(((high >>> (nodeShift - 32)) & ((1 << nodeBits) - 1)) * 64 + ((high >>> (zoneShift - 32)) & ((1 << zoneBits) - 1)));
        if (zone !== undefined && pfn >= zone.startPfn && pfn < zone.startPfn + zone.spannedPages) {
          run.key = high >>> keyShift;
          run.end = zone.startPfn + zone.spannedPages;
          return;
        }
        run.key = -1;
        offZone.push(pfn, high);
      },
      finish: (kind) => {
        const spans = [...zones.values()].filter((zone) => zone.spannedPages > 0);
        let wrong = 0;
        let example = '';
        for (let i = 0; i < offZone.length; i += 2) {
          const pfn = offZone[i]!;
          // A frame outside every zone (the first frame, firmware holes) is reserved by the kernel and carries no zone.
          if (kind[pfn] === KIND.reserved && !spans.some((z) => pfn >= z.startPfn && pfn < z.startPfn + z.spannedPages)) continue;
          const high = offZone[i + 1]!;
          if (wrong++ === 0)
            example = `frame ${hex(pfn)} says node ${(high >>> (nodeShift - 32)) & ((1 << nodeBits) - 1)} zone ${(high >>> (zoneShift - 32)) & ((1 << zoneBits) - 1)}`;
        }
        if (wrong > 0) {
          throw new PageClassRefusal(
            this.guest.id,
            'zone bits',
            `${wrong} frames' zone/node bits (${this.rules.series} rules: zone at bit ${zoneShift}, node at ${nodeShift}) name a zone that does not span them, e.g. ${example}`,
          );
        }
      },
    };
  }
}
