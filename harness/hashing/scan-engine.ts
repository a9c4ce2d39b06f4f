/**
 * The per-page loops of content-based scanning behind one small interface, so that a strategy is written once:
 * the native engine (native/page-scan.c, through koffi: one call per run of pages) where gcc and libxxhash are
 * there, and a portable one over any PageHasher (WASM fallback, and the reference in unit tests).
 *
 * A key is one uint64 per page: high word = top 32 bits of its 64-bit hash, low word = its global index
 * (guest << 24 | gfn, see pageIndex). Sorting keys groups pages by truncated hash; a truncated hash proposes
 * more candidates, never fewer, and every candidate is confirmed byte by byte before it is proposed.
 */
import { PAGE_SIZE } from '../vocabulary.ts';
import { ZERO_PAGE } from '../vocabulary.ts';
import type { PageHasher } from './page-hasher.ts';

/** Guest pages addressable by a 32-bit global index: 2^24 pages (64 GiB) per guest, 256 guests. */
export const GFN_BITS = 24;
export const MAX_GUEST_PAGES = 2 ** GFN_BITS;
export const MAX_GUESTS = 256;
export const pageIndex = (guest: number, gfn: number): number => guest * MAX_GUEST_PAGES + gfn;
export const guestOfIndex = (index: number): number => Math.floor(index / MAX_GUEST_PAGES);
export const gfnOfIndex = (index: number): number => index % MAX_GUEST_PAGES;

/** Pages per lockstep window of the native pass over mapped guests (WINDOW in native/page-scan.c). */
export const SCAN_WINDOW_PAGES = 64;

/** What the hash pass confirmed about a page, in cache (flags). */
export const PAGE_ZERO = 1;
export const PAGE_PAIR = 2;

/** Per-page hash and address of the previous guest's pages at the same gfns, and this guest's (for the next). */
export interface PairSlots {
  prevHashes: BigUint64Array;
  prevAddrs: BigUint64Array;
  curHashes: BigUint64Array;
  curAddrs: BigUint64Array;
}

/** One flag byte per page of every guest: guest g's page gfn is bytes[offsets[g] + gfn]. */
export interface PageFlags {
  bytes: Uint8Array;
  offsets: Uint32Array;
}

export interface ScanEngine {
  /** For run.json and the bench, e.g. "native (page-scan.c, xxh3-64 libxxhash)". */
  readonly name: string;
  /** Hash each page of `pages` (whole pages) into hashes[0..). */
  hashPages(pages: Buffer, hashes: BigUint64Array): void;
  /**
   * Hash each page of `pages` (global indices firstIndex…) and confirm in cache what can be: flags[i] =
   * PAGE_ZERO for an all-zero page (no key), PAGE_PAIR for a page byte-identical to the previous guest's page
   * at the same gfn (pair.prev*, address 0 = none; native only), else 0. Every other page appends its key to
   * keys from position fill. pair.cur* receive this page's hash and address for the next guest. Returns the
   * new fill; stats[0] += bytes compared, stats[1] += bytes hashed (a PAGE_PAIR page is compared, not hashed).
   */
  hashKeys(pages: Buffer, firstIndex: number, keys: BigUint64Array, fill: number, flags: Uint8Array, pair: PairSlots, stats: Float64Array): number;
  /**
   * Native only: the whole pass over guests whose RAM is each one view, in one call (lockstep windows, as
   * hashKeys). On entry flags are the residency (0 = hole, never read; else read); on return a hole is
   * PAGE_ZERO and a read page has its flag. Keys are written from 0; returns how many. stats[0] += bytes
   * compared, stats[1] += bytes hashed, stats[2] += pages read.
   */
  hashGuests?(views: readonly Buffer[], flags: PageFlags, keys: BigUint64Array, stats: Float64Array): number;
  /**
   * Native only: hashGuests over the lockstep windows of gfns [firstGfn, endGfn) alone (firstGfn a multiple of
   * SCAN_WINDOW_PAGES), guest RAM given by address (bases[g]: a view the caller holds; any thread of the process
   * may read it). Keys from keys[0]; returns how many. Ranges done apart and put end to end give hashGuests.
   */
  hashGuestsRange?(
    bases: BigUint64Array,
    pageCounts: Uint32Array,
    flags: PageFlags,
    keys: BigUint64Array,
    stats: Float64Array,
    firstGfn: number,
    endGfn: number,
  ): number;
  /**
   * Native only: merge runs of keys each sorted by sortKeys (run r at keys[starts[r], + counts[r])) into out
   * (apart from them), equal hashes in run order: sorting runs apart and merging them = sorting them end to end.
   */
  mergeSorted?(keys: BigUint64Array, starts: Uint32Array, counts: Uint32Array, out: BigUint64Array): void;
  /** Native only: pages to read (flag ≠ 0) per window of SCAN_WINDOW_PAGES gfns, summed over guests. */
  countWindows?(flags: PageFlags, pageCounts: Uint32Array): Uint32Array;
  /** Native only: confirmInPlace with guest RAM given by address (bases[g]), for any thread. */
  confirmAt?(
    keys: BigUint64Array,
    n: number,
    bases: BigUint64Array,
    flags: PageFlags,
    bounds: Uint32Array,
    scratch: BigUint64Array,
    compared: Float64Array,
  ): number;
  /** Native only: the packed indices of the pages whose flag is `want` (pageCounts[g] pages of guest g). */
  collectFlag?(flags: PageFlags, pageCounts: Uint32Array, want: number): Uint32Array;
  /** Append the keys of pages [0, flags.length) whose flag is `want`, from stored hashes; returns the new fill. */
  keysFromHashes(hashes: BigUint64Array, flags: Uint8Array, want: number, firstIndex: number, keys: BigUint64Array, fill: number): number;
  /** Sort keys[0, n) by hash (the order of equal hashes is the kernel's). scratch holds n keys. */
  sortKeys(keys: BigUint64Array, n: number, scratch: BigUint64Array): void;
  /**
   * Native only: confirm the runs of sorted keys (equal high words) byte by byte where every guest's RAM is one
   * in-place view (views[g], Guest.memoryView); a PAGE_PAIR page whose partner is its class's first page (or
   * the page placed just before it) joins without a compare: it was compared in cache. Each run is rewritten
   * class by class; bounds gets [start, end) of every class of ≥ 2 pages; returns how many; compared[0] +=
   * bytes compared.
   */
  confirmInPlace?(
    keys: BigUint64Array,
    n: number,
    views: readonly Buffer[],
    flags: PageFlags,
    bounds: Uint32Array,
    scratch: BigUint64Array,
    compared: Float64Array,
  ): number;
}

/** Any PageHasher, in JS over typed arrays (no per-page objects): the fallback and the reference in tests. */
export class PortableScanEngine implements ScanEngine {
  readonly name: string;
  private readonly zeroHashHigh: number;
  private chunkHashes = new BigUint64Array(0);

  constructor(private readonly hasher: PageHasher) {
    this.name = `portable (${hasher.name})`;
    const zero = new BigUint64Array([hasher.hashPage(ZERO_PAGE)]);
    this.zeroHashHigh = new Uint32Array(zero.buffer)[1]!;
  }

  hashPages(pages: Buffer, hashes: BigUint64Array): void {
    this.hasher.hashPages(pages, hashes);
  }

  hashKeys(pages: Buffer, firstIndex: number, keys: BigUint64Array, fill: number, flags: Uint8Array, _pair: PairSlots, stats: Float64Array): number {
    const count = pages.length / PAGE_SIZE;
    if (this.chunkHashes.length < count) this.chunkHashes = new BigUint64Array(count);
    this.hasher.hashPages(pages, this.chunkHashes);
    stats[1]! += pages.length;
    const hashWords = new Uint32Array(this.chunkHashes.buffer);
    const keyWords = new Uint32Array(keys.buffer, keys.byteOffset);
    for (let i = 0; i < count; i++) {
      const high = hashWords[2 * i + 1]!;
      // Compared with the zero page only when the hash says so (as the native engine does); no pairing here.
      let zero = false;
      if (high === this.zeroHashHigh) {
        stats[0]! += PAGE_SIZE;
        zero = pages.compare(ZERO_PAGE, 0, PAGE_SIZE, i * PAGE_SIZE, (i + 1) * PAGE_SIZE) === 0;
      }
      flags[i] = zero ? PAGE_ZERO : 0;
      if (zero) continue;
      keyWords[2 * fill] = firstIndex + i;
      keyWords[2 * fill + 1] = high;
      fill++;
    }
    return fill;
  }

  keysFromHashes(hashes: BigUint64Array, flags: Uint8Array, want: number, firstIndex: number, keys: BigUint64Array, fill: number): number {
    const hashWords = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
    const keyWords = new Uint32Array(keys.buffer, keys.byteOffset);
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] !== want) continue;
      keyWords[2 * fill] = firstIndex + i;
      keyWords[2 * fill + 1] = hashWords[2 * i + 1]!;
      fill++;
    }
    return fill;
  }

  sortKeys(keys: BigUint64Array, n: number): void {
    // A numeric sort of the whole key (equal hashes by index); the native radix keeps equal hashes in input order.
    keys.subarray(0, n).sort();
  }
}
