/**
 * Which host page frame backs each page of a process's memory: /proc/<pid>/pagemap (one 64-bit entry per
 * virtual page: bit 63 present, bits 0–54 the page frame number) and /proc/kpageflags (one 64-bit flag word
 * per frame). This is how the harness sees, from outside, what the kernel did with anonymous guest RAM:
 * pages merged by KSM share a frame (same PFN, flag KSM); a page mapped to the kernel's zero page (never
 * written, or merged by KSM with use_zero_pages) costs no frame (flag ZERO_PAGE). Reading both needs root
 * (CAP_SYS_ADMIN): without it the kernel reports every PFN as 0, which we refuse rather than misread.
 */
import fs from 'node:fs';
import { XmeError, errorMessage } from '../util/errors.ts';

const PAGE_SIZE = 4096;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;
/** Bit numbers of /proc/kpageflags (include/uapi/linux/kernel-page-flags.h). */
export const KPF_KSM = 21;
export const KPF_THP = 22;
export const KPF_ZERO_PAGE = 24;

/** Marks a page that is not present in `frames` (never touched, or swapped out). */
export const NOT_PRESENT = -1;

/**
 * The PFN behind each of `pages` pages of process `pid` starting at virtual `address` (page aligned);
 * NOT_PRESENT where no frame is mapped. One pread of pagemap (8 bytes per page: 512 KiB per 256 MiB).
 */
export function readPageFrames(pid: number, address: number, pages: number, fd?: number): Float64Array {
  if (address % PAGE_SIZE !== 0) throw new RangeError(`address 0x${address.toString(16)} is not page aligned`);
  const own = fd === undefined;
  const handle = fd ?? openProc(`/proc/${pid}/pagemap`);
  try {
    const raw = Buffer.allocUnsafe(pages * 8);
    const read = fs.readSync(handle, raw, 0, raw.length, (address / PAGE_SIZE) * 8);
    if (read !== raw.length) throw new XmeError(`short read of /proc/${pid}/pagemap (${read} of ${raw.length} bytes)`);
    const entries = new BigUint64Array(raw.buffer, raw.byteOffset, pages);
    const frames = new Float64Array(pages);
    let presentWithoutPfn = 0;
    for (let i = 0; i < pages; i++) {
      const entry = entries[i]!;
      if ((entry & PRESENT) === 0n) {
        frames[i] = NOT_PRESENT;
        continue;
      }
      const pfn = Number(entry & PFN_MASK);
      if (pfn === 0) presentWithoutPfn++;
      frames[i] = pfn;
    }
    if (presentWithoutPfn > 0 && presentWithoutPfn === countPresent(frames)) {
      throw new XmeError(
        `the kernel hides page frame numbers from this process (every present page of ${pid} reads PFN 0)`,
        'run xme as root: reading which host frame backs a guest page needs CAP_SYS_ADMIN',
      );
    }
    return frames;
  } finally {
    if (own) fs.closeSync(handle);
  }
}

function countPresent(frames: Float64Array): number {
  let n = 0;
  for (let i = 0; i < frames.length; i++) if (frames[i] !== NOT_PRESENT) n++;
  return n;
}

export function openProc(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new XmeError(`cannot read ${file} (${code})`, 'run xme as root');
    throw new XmeError(`cannot read ${file}: ${errorMessage(error)}`);
  }
}

/**
 * Flags of host frames, read from /proc/kpageflags. Whether a frame is the zero page never changes, so that
 * answer is kept; KSM status changes as pages are merged and broken, so it is read fresh each call.
 */
export class FrameFlags {
  private fd: number | undefined;
  private readonly zeroKnown = new Map<number, boolean>();
  private readonly word = Buffer.alloc(8);

  /** The flag word of one frame. */
  flags(pfn: number): bigint {
    this.fd ??= openProc('/proc/kpageflags');
    const read = fs.readSync(this.fd, this.word, 0, 8, pfn * 8);
    if (read !== 8) throw new XmeError(`short read of /proc/kpageflags at PFN ${pfn}`);
    return this.word.readBigUInt64LE(0);
  }

  /** True for the kernel's zero page and the huge zero page's frames. */
  isZeroPage(pfn: number): boolean {
    let zero = this.zeroKnown.get(pfn);
    if (zero === undefined) {
      zero = ((this.flags(pfn) >> BigInt(KPF_ZERO_PAGE)) & 1n) === 1n;
      this.zeroKnown.set(pfn, zero);
    }
    return zero;
  }

  isKsm(pfn: number): boolean {
    return ((this.flags(pfn) >> BigInt(KPF_KSM)) & 1n) === 1n;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** How often each PFN occurs in the given frame maps (present pages only). */
export function frameMultiplicity(maps: readonly Float64Array[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const frames of maps) {
    for (let i = 0; i < frames.length; i++) {
      const pfn = frames[i]!;
      if (pfn !== NOT_PRESENT) counts.set(pfn, (counts.get(pfn) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Host residency of one guest from its frame map: 1 where a frame of its own (or a KSM frame) backs the page,
 * 0 where nothing does (not present) or the zero page does (all zeros, costs the host nothing). A frame is
 * looked up in kpageflags only when it occurs more than once in the map — the zero page always does when it
 * matters, and a frame mapped once is never the zero page in practice (the huge zero page's frames would be:
 * only if a whole 2 MiB region were read and never written, which the harness does not do).
 */
export function residencyFromFrames(frames: Float64Array, flags: FrameFlags, multiplicity = frameMultiplicity([frames])): Uint8Array {
  const map = new Uint8Array(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const pfn = frames[i]!;
    if (pfn === NOT_PRESENT) continue;
    map[i] = (multiplicity.get(pfn) ?? 0) > 1 && flags.isZeroPage(pfn) ? 0 : 1;
  }
  return map;
}
