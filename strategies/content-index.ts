/**
 * The content strategies' index: keys (scan-engine.ts: truncated hash ‖ global page index) in typed arrays,
 * sorted (radix, in C) so that equal hashes are neighbours, then byte-confirmed run by run. No per-page JS
 * object or bigint until the confirmed groups are handed to the ledger. Memory, reused from scan to scan:
 * keys and scratch (8 + 8 bytes per guest page), class bounds (4), flags (1): 21 bytes per guest page, plus a
 * window of WINDOW_PAGES slots for the in-cache pairing.
 */
import type { Guest } from '../harness/backends/types.ts';
import { PAGE_SIZE } from '../harness/vocabulary.ts';
import {
  gfnOfIndex,
  guestOfIndex,
  MAX_GUEST_PAGES,
  MAX_GUESTS,
  PAGE_PAIR,
  PAGE_ZERO,
  pageIndex,
  type PageFlags,
  type PairSlots,
  type ScanEngine,
} from '../harness/hashing/scan-engine.ts';
import { canThread, confirmThreaded, hashSortThreaded } from '../harness/hashing/parallel-scan.ts';
import { viewAddresses } from '../harness/hashing/native-scan-engine.ts';
import { pageBytes, type Residency } from '../harness/sharing/resident-pages.ts';
import { PackedGroup } from '../harness/sharing/packed-group.ts';
import { XmeError } from '../harness/util/errors.ts';

/**
 * Pages per window of the lockstep pass for guests that copy (1 MiB per guest; the native pass over mapped
 * guests uses 64-page windows of its own, page-scan.c): guest g's page at a gfn is compared while guest
 * g − 1's page at that gfn is still in the CPU's cache, so the byte compare of the commonest duplicate (the
 * same page at the same place in two identical guests) is cheap. Also bounds each read to 1 MiB.
 */
export const WINDOW_PAGES = 256;

/** Growable typed arrays, kept from scan to scan. */
export class KeyIndex {
  keys: BigUint64Array = new BigUint64Array(0);
  scratch: BigUint64Array = new BigUint64Array(0);
  bounds: Uint32Array = new Uint32Array(0);
  flags: PageFlags = { bytes: new Uint8Array(0), offsets: new Uint32Array(0) };
  private readonly slots = [0, 1].map(() => ({ hashes: new BigUint64Array(WINDOW_PAGES), addrs: new BigUint64Array(WINDOW_PAGES) }));

  /** Room for every page of these guests (allocates only when they grew). */
  reserve(guests: readonly Guest[]): void {
    checkGuestsFit(guests);
    const pages = guests.reduce((sum, g) => sum + g.memoryPages, 0);
    // Shared memory, so that scan threads (harness/hashing/parallel-scan.ts) write the index in place.
    if (this.keys.length < pages) {
      this.keys = new BigUint64Array(new SharedArrayBuffer(8 * pages));
      this.scratch = new BigUint64Array(new SharedArrayBuffer(8 * pages));
      this.bounds = new Uint32Array(new SharedArrayBuffer(4 * 2 * Math.ceil(pages / 2)));
    }
    const offsets = new Uint32Array(guests.length);
    guests.forEach((_, g) => (offsets[g] = g === 0 ? 0 : offsets[g - 1]! + guests[g - 1]!.memoryPages));
    if (this.flags.bytes.length !== pages) this.flags = { bytes: new Uint8Array(new SharedArrayBuffer(pages)), offsets };
    else this.flags.offsets = offsets;
  }

  /** Guest g's flags. */
  guestFlags(g: number, pages: number): Uint8Array {
    const start = this.flags.offsets[g]!;
    return this.flags.bytes.subarray(start, start + pages);
  }

  get bytes(): number {
    return this.keys.byteLength + this.scratch.byteLength + this.bounds.byteLength + this.flags.bytes.byteLength + this.slots.length * WINDOW_PAGES * 16;
  }

  /** Pair slots for pages [from, from + count) of a window: previous guest's in, this guest's out. */
  pairSlots(from: number, count: number, guestParity: number): PairSlots {
    const prev = this.slots[1 - guestParity]!;
    const cur = this.slots[guestParity]!;
    return {
      prevHashes: prev.hashes.subarray(from, from + count),
      prevAddrs: prev.addrs.subarray(from, from + count),
      curHashes: cur.hashes.subarray(from, from + count),
      curAddrs: cur.addrs.subarray(from, from + count),
    };
  }

  private buffers: Buffer[] | undefined;

  /** Two window-sized read buffers (for guests that copy), made once. */
  windowBuffers(): Buffer[] {
    this.buffers ??= [0, 1].map(() => Buffer.alloc(WINDOW_PAGES * PAGE_SIZE));
    return this.buffers;
  }

  /** Forget the pair slots of one parity (a guest's window starts with no page known). */
  clearSlots(guestParity: number): void {
    this.slots[guestParity]!.addrs.fill(0n);
  }
}

export function checkGuestsFit(guests: readonly Guest[]): void {
  if (guests.length > MAX_GUESTS) throw new XmeError(`content index: at most ${MAX_GUESTS} guests (${guests.length} given)`);
  const large = guests.find((g) => g.memoryPages > MAX_GUEST_PAGES);
  if (large) throw new XmeError(`content index: guest ${large.id} has more than ${MAX_GUEST_PAGES} pages (64 GiB)`);
}

/** Runs [first, first + count) of backed pages within [start, end). */
export function* backedRuns(start: number, end: number, residency: Uint8Array | undefined): Generator<{ first: number; count: number }> {
  if (!residency) {
    if (end > start) yield { first: start, count: end - start };
    return;
  }
  let gfn = start;
  while (gfn < end) {
    while (gfn < end && residency[gfn] === 0) gfn++;
    const first = gfn;
    while (gfn < end && residency[gfn] !== 0) gfn++;
    if (gfn > first) yield { first, count: gfn - first };
  }
}

/**
 * Hash every backed page of every guest into keys, window by window in lockstep: returns the number of keys
 * and how many pages were read. Holes are zero pages (flag PAGE_ZERO), never read. stats as ScanEngine's
 * (stats[0] bytes compared, stats[1] bytes hashed; 3 entries).
 */
export function hashAllPages(
  engine: ScanEngine,
  index: KeyIndex,
  guests: readonly Guest[],
  residency: Residency | undefined,
  stats: Float64Array,
): { n: number; pagesRead: number } {
  index.reserve(guests);
  const views = mappedViews(guests);
  if (engine.hashGuests && views) {
    // One native call for the whole pass; on entry the flags are the residency (0 = hole, never read).
    seedResidency(index, guests, residency);
    const before = stats[2] ?? 0;
    const n = engine.hashGuests(views as Buffer[], index.flags, index.keys, stats);
    return { n, pagesRead: stats[2]! - before };
  }
  index.flags.bytes.fill(PAGE_ZERO); // what a hole is; read pages get their own flag
  const longest = Math.max(0, ...guests.map((g) => g.memoryPages));
  let n = 0;
  let pagesRead = 0;
  // Reads of the current and the previous guest stay referenced while pair slots point into them; where a
  // guest can read into a buffer, one buffer per parity is reused (window page i at offset i * PAGE_SIZE).
  const buffers = index.windowBuffers();
  const held: Buffer[][] = [[], []];
  for (let window = 0; window < longest; window += WINDOW_PAGES) {
    index.clearSlots(1); // the first guest has no previous guest
    held[1] = [];
    guests.forEach((guest, g) => {
      const end = Math.min(window + WINDOW_PAGES, guest.memoryPages);
      const parity = g % 2;
      index.clearSlots(parity);
      held[parity] = [];
      const flags = index.guestFlags(g, guest.memoryPages);
      for (const run of backedRuns(window, end, residency?.[g])) {
        let pages: Buffer;
        if (guest.tickCopy) {
          const offset = (run.first - window) * PAGE_SIZE;
          guest.tickCopy.readPagesInto(run.first, run.count, buffers[parity]!, offset);
          pages = buffers[parity]!.subarray(offset, offset + run.count * PAGE_SIZE);
        } else {
          pages = guest.pages(run.first, run.count);
        }
        held[parity]!.push(pages);
        const slots = index.pairSlots(run.first - window, run.count, parity);
        n = engine.hashKeys(pages, pageIndex(g, run.first), index.keys, n, flags.subarray(run.first, run.first + run.count), slots, stats);
        pagesRead += run.count;
      }
    });
  }
  return { n, pagesRead };
}

/** Every guest's RAM as one in-place view, or undefined if any guest has none (it copies). */
function mappedViews(guests: readonly Guest[]): Buffer[] | undefined {
  const views = guests.map((g) => g.memoryView?.all());
  return views.every((v) => v !== undefined) ? (views as Buffer[]) : undefined;
}

/** The native pass's flags on entry: the residency (0 = hole, never read; else read). */
function seedResidency(index: KeyIndex, guests: readonly Guest[], residency: Residency | undefined): void {
  guests.forEach((guest, g) => {
    const flags = index.guestFlags(g, guest.memoryPages);
    const map = residency?.[g];
    if (map) flags.set(map.subarray(0, flags.length));
    else flags.fill(1);
  });
}

/** How a pass ran: threads that worked (the harness thread included) and the scan threads' CPU, which the harness thread's clock does not see. */
export interface PassThreads {
  threads: number;
  workerCpuMs: number;
}

/** Threads a pass over these guests can use: `wanted` where every guest is mapped and the engine is native, else 1. */
export function usableThreads(engine: ScanEngine, guests: readonly Guest[], wanted: number): number {
  return wanted > 1 && canThread(engine) && mappedViews(guests) ? wanted : 1;
}

/**
 * hashAllPages, then sort and confirm, on `threads` threads where usableThreads allows (harness/hashing/parallel-scan.ts:
 * ranges of whole windows hashed and sorted apart then merged, then runs of equal hashes; the same keys, classes
 * and figures as one thread).
 * Returns what hashAllPages and confirmRuns return, with how many threads worked and their CPU.
 */
export async function hashSortConfirm(
  engine: ScanEngine,
  index: KeyIndex,
  guests: readonly Guest[],
  residency: Residency | undefined,
  stats: Float64Array,
  threads: number,
): Promise<{ n: number; pagesRead: number; confirmed: Confirmed; threads: PassThreads }> {
  const views = mappedViews(guests);
  if (usableThreads(engine, guests, threads) === 1 || !views || !canThread(engine)) {
    const { n, pagesRead } = hashAllPages(engine, index, guests, residency, stats);
    engine.sortKeys(index.keys, n, index.scratch);
    return { n, pagesRead, confirmed: confirmRuns(engine, index, n, guests, residency), threads: { threads: 1, workerCpuMs: 0 } };
  }
  index.reserve(guests);
  seedResidency(index, guests, residency);
  // The memory behind the views (the mapped RAM file, or the tick's copy) is the guests' until teardown or
  // the end of the tick, neither of which can come while the strategy scans: its addresses stay good.
  const bases = viewAddresses(views);
  const pageCounts = new Uint32Array(guests.map((g) => g.memoryPages));
  const before = stats[2] ?? 0;
  const hashed = await hashSortThreaded(engine, bases, pageCounts, index.flags, index.keys, index.scratch, stats, threads);
  const confirmed = await confirmThreaded(engine, index.keys, hashed.n, bases, index.flags, index.bounds, index.scratch, threads);
  return {
    n: hashed.n,
    pagesRead: stats[2]! - before,
    confirmed: { classes: confirmed.classes, bytesCompared: confirmed.bytesCompared },
    threads: { threads, workerCpuMs: hashed.workerCpuMs + confirmed.workerCpuMs },
  };
}

export interface Confirmed {
  /** Classes of ≥ 2 byte-identical pages: [bounds[2k], bounds[2k+1]) in keys. */
  classes: number;
  bytesCompared: number;
}

/**
 * Byte-confirm the runs of sorted keys[0, n): in place in C where every guest has a memory view, else page by
 * page through pageBytes (a hole is the zero page, never read). Either way each run is rewritten so that each
 * class of identical bytes is contiguous and index.bounds lists the classes of two or more pages.
 */
export function confirmRuns(engine: ScanEngine, index: KeyIndex, n: number, guests: readonly Guest[], residency: Residency | undefined): Confirmed {
  const views = guests.map((g) => g.memoryView?.all());
  if (engine.confirmInPlace && views.every((v) => v !== undefined)) {
    // Only backed pages have keys when residency is known (holes are zero pages), so no hole is read.
    const compared = new Float64Array(1);
    const classes = engine.confirmInPlace(index.keys, n, views as Buffer[], index.flags, index.bounds, index.scratch, compared);
    return { classes, bytesCompared: compared[0]! };
  }
  return confirmByCopies(index, n, (i) => pageBytes(guests[guestOfIndex(i)]!, gfnOfIndex(i), residency?.[guestOfIndex(i)]));
}

/** The same partition as the C engine, reading each page through `page` (a copy where the backend copies). */
export function confirmByCopies(index: KeyIndex, n: number, page: (i: number) => Buffer): Confirmed {
  const words = new Uint32Array(index.keys.buffer, 0, 2 * n);
  const pending = new Uint32Array(index.scratch.buffer);
  const { bytes: flags, offsets } = index.flags;
  const flagOf = (i: number) => flags[offsets[guestOfIndex(i)]! + gfnOfIndex(i)];
  let classes = 0;
  let bytesCompared = 0;
  let i = 0;
  while (i < n) {
    let end = i + 1;
    while (end < n && words[2 * end + 1] === words[2 * i + 1]) end++;
    if (end - i >= 2) {
      const high = words[2 * i + 1]!;
      let left = end - i;
      for (let j = 0; j < left; j++) pending[j] = words[2 * (i + j)]!;
      let out = 0;
      while (left > 0) {
        const ref = pending[0]!;
        // Read only when a compare needs it: the pairs of two identical guests join without one.
        let reference: Buffer | undefined;
        const start = i + out;
        words[2 * (i + out++)] = ref;
        let keep = 0;
        for (let j = 1; j < left; j++) {
          const candidate = pending[j]!;
          // Compared in cache by the hash pass with its partner (previous guest, same gfn): no second compare.
          const partner = candidate - MAX_GUEST_PAGES;
          let same = flagOf(candidate) === PAGE_PAIR && (partner === ref || partner === words[2 * (i + out - 1)]);
          if (!same) {
            bytesCompared += PAGE_SIZE;
            reference ??= page(ref);
            same = page(candidate).equals(reference);
          }
          if (same) words[2 * (i + out++)] = candidate;
          else pending[keep++] = candidate;
        }
        if (i + out - start >= 2) {
          index.bounds[2 * classes] = start;
          index.bounds[2 * classes + 1] = i + out;
          classes++;
        }
        left = keep;
      }
      for (let j = i; j < end; j++) words[2 * j + 1] = high;
    }
    i = end;
  }
  return { classes, bytesCompared };
}

/** The confirmed classes as packed groups (one typed array for all, a view per group; no object per page). */
export function classGroups(index: KeyIndex, confirmed: Confirmed): PackedGroup[] {
  const words = new Uint32Array(index.keys.buffer);
  let total = 0;
  for (let k = 0; k < confirmed.classes; k++) total += index.bounds[2 * k + 1]! - index.bounds[2 * k]!;
  const all = new Uint32Array(total);
  const groups = new Array<PackedGroup>(confirmed.classes);
  let at = 0;
  for (let k = 0; k < confirmed.classes; k++) {
    const start = at;
    for (let j = index.bounds[2 * k]!; j < index.bounds[2 * k + 1]!; j++) all[at++] = words[2 * j]!;
    groups[k] = new PackedGroup(all.subarray(start, at), false);
  }
  return groups;
}

/** Every page flagged `flag` in these guests' flags, as packed indices. */
export function flaggedPages(index: KeyIndex, guests: readonly Guest[], flag: number, engine?: ScanEngine): Uint32Array {
  if (engine?.collectFlag) return engine.collectFlag(index.flags, new Uint32Array(guests.map((g) => g.memoryPages)), flag);
  const bytes = index.flags.bytes;
  let count = 0;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === flag) count++;
  const pages = new Uint32Array(count);
  let k = 0;
  guests.forEach((guest, g) => {
    const flags = index.guestFlags(g, guest.memoryPages);
    for (let gfn = 0; gfn < flags.length; gfn++) if (flags[gfn] === flag) pages[k++] = pageIndex(g, gfn);
  });
  return pages;
}

/** Distinct (truncated) hashes among sorted keys[0, n). */
export function distinctHashes(index: KeyIndex, n: number): number {
  const words = new Uint32Array(index.keys.buffer);
  let distinct = 0;
  for (let j = 0; j < n; j++) if (j === 0 || words[2 * j + 1] !== words[2 * j - 1]) distinct++;
  return distinct;
}
