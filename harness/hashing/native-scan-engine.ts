/**
 * The native scan engine (native/page-scan.c): built once per source version with gcc into the cache
 * (XME_CACHE/native/), linked with Debian's libxxhash, loaded with koffi. Typed arrays go to C as pointers
 * (koffi passes their memory, no copy); guest pages go as addresses of views that outlive the call.
 * Undefined (with the reason) where gcc or libxxhash is missing: callers then use PortableScanEngine.
 */
import koffi from 'koffi';
import { PAGE_SIZE } from '../vocabulary.ts';
import { buildNative } from './native-build.ts';
import { SCAN_WINDOW_PAGES, type PageFlags, type PairSlots, type ScanEngine } from './scan-engine.ts';

/** The scan engine's shared object (page-scan.c with libxxhash), built if missing; worker threads load the same file. */
export const buildPageScan = (): string => buildNative('page-scan', ['-l:libxxhash.so.0']);

type HashPages = (base: number, count: number, hashes: BigUint64Array) => void;
type HashKeys = (
  base: number,
  count: number,
  firstIndex: number,
  zeroHash: bigint,
  keys: BigUint64Array,
  fill: number,
  flags: Uint8Array,
  prevHashes: BigUint64Array,
  prevAddrs: BigUint64Array,
  curHashes: BigUint64Array,
  curAddrs: BigUint64Array,
  stats: Float64Array,
) => number;
type HashGuestsRange = (
  guests: number,
  bases: BigUint64Array,
  pageCounts: Uint32Array,
  flags: Uint8Array,
  flagOffsets: Uint32Array,
  zeroHash: bigint,
  keys: BigUint64Array,
  stats: Float64Array,
  firstGfn: number,
  endGfn: number,
) => number;
type CountWindows = (flags: Uint8Array, flagOffsets: Uint32Array, pageCounts: Uint32Array, guests: number, out: Uint32Array) => void;
type MergeSorted = (keys: BigUint64Array, starts: Uint32Array, counts: Uint32Array, runs: number, out: BigUint64Array) => void;
type CollectFlag = (flags: Uint8Array, flagOffsets: Uint32Array, pageCounts: Uint32Array, guests: number, want: number, out: Uint32Array | null) => number;
type HashGuests = (
  guests: number,
  bases: BigUint64Array,
  pageCounts: Uint32Array,
  flags: Uint8Array,
  flagOffsets: Uint32Array,
  zeroHash: bigint,
  keys: BigUint64Array,
  stats: Float64Array,
) => number;
type KeysFromHashes = (
  hashes: BigUint64Array,
  flags: Uint8Array,
  want: number,
  count: number,
  firstIndex: number,
  keys: BigUint64Array,
  fill: number,
) => number;
type SortKeys = (keys: BigUint64Array, n: number, scratch: BigUint64Array) => void;
type ConfirmRuns = (
  keys: BigUint64Array,
  n: number,
  bases: BigUint64Array,
  flags: Uint8Array,
  flagOffsets: Uint32Array,
  bounds: Uint32Array,
  scratch: BigUint64Array,
  compared: Float64Array,
) => number;

/** The addresses of views (guest RAM mapped in this process), for a native call on any thread; the caller holds the views meanwhile. */
export function viewAddresses(views: readonly Buffer[]): BigUint64Array {
  return new BigUint64Array(views.map((view) => BigInt(koffi.address(view))));
}

class NativeScanEngine implements ScanEngine {
  readonly name = 'native (harness/hashing/native/page-scan.c, xxh3-64 from libxxhash)';

  constructor(
    private readonly fns: {
      hashPages: HashPages;
      hashKeys: HashKeys;
      hashGuests: HashGuests;
      hashGuestsRange: HashGuestsRange;
      countWindows: CountWindows;
      mergeSorted: MergeSorted;
      collectFlag: CollectFlag;
      keysFromHashes: KeysFromHashes;
      sortKeys: SortKeys;
      confirmRuns: ConfirmRuns;
    },
    private readonly zeroHash: bigint,
  ) {}

  hashPages(pages: Buffer, hashes: BigUint64Array): void {
    const count = pages.length / PAGE_SIZE;
    if (hashes.length < count) throw new RangeError(`output holds ${hashes.length} hashes, ${count} pages given`);
    if (count > 0) this.fns.hashPages(Number(koffi.address(pages)), count, hashes);
  }

  hashKeys(pages: Buffer, firstIndex: number, keys: BigUint64Array, fill: number, flags: Uint8Array, pair: PairSlots, stats: Float64Array): number {
    const count = pages.length / PAGE_SIZE;
    if (keys.length < fill + count || flags.length < count) throw new RangeError('key array or flags too short for the pages given');
    if ([pair.prevHashes, pair.prevAddrs, pair.curHashes, pair.curAddrs].some((slots) => slots.length < count))
      throw new RangeError('pair slots too short for the pages given');
    if (count === 0) return fill;
    return this.fns.hashKeys(
      Number(koffi.address(pages)),
      count,
      firstIndex,
      this.zeroHash,
      keys,
      fill,
      flags,
      pair.prevHashes,
      pair.prevAddrs,
      pair.curHashes,
      pair.curAddrs,
      stats,
    );
  }

  collectFlag(flags: PageFlags, pageCounts: Uint32Array, want: number): Uint32Array {
    const guests = pageCounts.length;
    if (flags.offsets.length !== guests) throw new RangeError('one page count per guest');
    const out = new Uint32Array(this.fns.collectFlag(flags.bytes, flags.offsets, pageCounts, guests, want, null));
    if (out.length) this.fns.collectFlag(flags.bytes, flags.offsets, pageCounts, guests, want, out);
    return out;
  }

  hashGuests(views: readonly Buffer[], flags: PageFlags, keys: BigUint64Array, stats: Float64Array): number {
    const pageCounts = new Uint32Array(views.map((view) => view.length / PAGE_SIZE));
    const total = pageCounts.reduce((sum, count) => sum + count, 0);
    if (keys.length < total || flags.bytes.length < total || flags.offsets.length !== views.length || stats.length < 3)
      throw new RangeError('keys, flags or stats too short for these guests');
    // The caller holds the views for the whole call: their memory (mapped guest RAM) does not move.
    const bases = viewAddresses(views);
    return this.fns.hashGuests(views.length, bases, pageCounts, flags.bytes, flags.offsets, this.zeroHash, keys, stats);
  }

  hashGuestsRange(
    bases: BigUint64Array,
    pageCounts: Uint32Array,
    flags: PageFlags,
    keys: BigUint64Array,
    stats: Float64Array,
    firstGfn: number,
    endGfn: number,
  ): number {
    const guests = bases.length;
    if (pageCounts.length !== guests || flags.offsets.length !== guests || stats.length < 3)
      throw new RangeError('one base, page count and flag offset per guest');
    if (firstGfn % SCAN_WINDOW_PAGES !== 0) throw new RangeError(`a range starts at a multiple of ${SCAN_WINDOW_PAGES} pages (${firstGfn} given)`);
    let most = 0;
    for (let g = 0; g < guests; g++) most += Math.max(0, Math.min(endGfn, pageCounts[g]!) - Math.min(firstGfn, pageCounts[g]!));
    if (keys.length < most) throw new RangeError('keys too short for this range');
    return this.fns.hashGuestsRange(guests, bases, pageCounts, flags.bytes, flags.offsets, this.zeroHash, keys, stats, firstGfn, endGfn);
  }

  countWindows(flags: PageFlags, pageCounts: Uint32Array): Uint32Array {
    if (flags.offsets.length !== pageCounts.length) throw new RangeError('one page count per guest');
    const out = new Uint32Array(Math.ceil(Math.max(0, ...pageCounts) / SCAN_WINDOW_PAGES));
    if (out.length) this.fns.countWindows(flags.bytes, flags.offsets, pageCounts, pageCounts.length, out);
    return out;
  }

  mergeSorted(keys: BigUint64Array, starts: Uint32Array, counts: Uint32Array, out: BigUint64Array): void {
    const runs = starts.length;
    if (counts.length !== runs || runs > 64) throw new RangeError('one start and count per run, at most 64 runs');
    let total = 0;
    for (let r = 0; r < runs; r++) {
      if (starts[r]! + counts[r]! > keys.length) throw new RangeError(`run ${r} beyond the keys`);
      total += counts[r]!;
    }
    if (out.length < total) throw new RangeError('out too short for the runs');
    if (total > 0) this.fns.mergeSorted(keys, starts, counts, runs, out);
  }

  confirmAt(
    keys: BigUint64Array,
    n: number,
    bases: BigUint64Array,
    flags: PageFlags,
    bounds: Uint32Array,
    scratch: BigUint64Array,
    compared: Float64Array,
  ): number {
    if (keys.length < n || scratch.length < n || bounds.length < 2 * Math.floor(n / 2)) throw new RangeError('key, scratch or bounds array too short');
    return n > 1 ? this.fns.confirmRuns(keys, n, bases, flags.bytes, flags.offsets, bounds, scratch, compared) : 0;
  }

  keysFromHashes(hashes: BigUint64Array, flags: Uint8Array, want: number, firstIndex: number, keys: BigUint64Array, fill: number): number {
    if (hashes.length < flags.length || keys.length < fill + flags.length) throw new RangeError('hash or key array too short');
    return flags.length ? this.fns.keysFromHashes(hashes, flags, want, flags.length, firstIndex, keys, fill) : fill;
  }

  sortKeys(keys: BigUint64Array, n: number, scratch: BigUint64Array): void {
    if (keys.length < n || scratch.length < n) throw new RangeError('key or scratch array too short');
    if (n > 1) this.fns.sortKeys(keys, n, scratch);
  }

  confirmInPlace(
    keys: BigUint64Array,
    n: number,
    views: readonly Buffer[],
    flags: PageFlags,
    bounds: Uint32Array,
    scratch: BigUint64Array,
    compared: Float64Array,
  ): number {
    // At most n / 2 classes of two or more pages.
    if (keys.length < n || scratch.length < n || bounds.length < 2 * Math.floor(n / 2)) throw new RangeError('key, scratch or bounds array too short');
    // The caller holds the views for the whole call: their memory (mapped guest RAM) does not move.
    const bases = viewAddresses(views);
    return n > 1 ? this.fns.confirmRuns(keys, n, bases, flags.bytes, flags.offsets, bounds, scratch, compared) : 0;
  }
}

let loaded: { engine?: ScanEngine; reason?: string } | undefined;

/** The native engine, or undefined with why not (XME_HASHER=wasm also turns it off). */
export function nativeScanEngine(): { engine?: ScanEngine; reason?: string } {
  if (loaded) return loaded;
  if (process.env.XME_HASHER === 'wasm') return (loaded = { reason: 'XME_HASHER=wasm' });
  try {
    const lib = koffi.load(buildPageScan());
    const fns = {
      hashPages: lib.func('void xme_hash_pages(uintptr_t base, uint32_t count, _Out_ uint64_t *hashes)') as HashPages,
      hashKeys: lib.func(
        'uint32_t xme_hash_keys(uintptr_t base, uint32_t count, uint32_t first_index, uint64_t zero_hash, _Inout_ uint64_t *keys, uint32_t fill, _Inout_ uint8_t *flags, const uint64_t *prev_hashes, const uint64_t *prev_addrs, _Inout_ uint64_t *cur_hashes, _Inout_ uint64_t *cur_addrs, _Inout_ double *stats)',
      ) as HashKeys,
      hashGuestsRange: lib.func(
        'uint32_t xme_hash_guests_range(uint32_t guests, const uint64_t *bases, const uint32_t *page_counts, _Inout_ uint8_t *flags, const uint32_t *flag_offsets, uint64_t zero_hash, _Inout_ uint64_t *keys, _Inout_ double *stats, uint32_t first_gfn, uint32_t end_gfn)',
      ) as HashGuestsRange,
      countWindows: lib.func(
        'void xme_count_windows(const uint8_t *flags, const uint32_t *flag_offsets, const uint32_t *page_counts, uint32_t guests, _Inout_ uint32_t *out)',
      ) as CountWindows,
      mergeSorted: lib.func(
        'void xme_merge_sorted(const uint64_t *keys, const uint32_t *starts, const uint32_t *counts, uint32_t runs, _Inout_ uint64_t *out)',
      ) as MergeSorted,
      collectFlag: lib.func(
        'uint32_t xme_collect_flag(const uint8_t *flags, const uint32_t *flag_offsets, const uint32_t *page_counts, uint32_t guests, uint8_t want, _Inout_ uint32_t *out)',
      ) as CollectFlag,
      hashGuests: lib.func(
        'uint32_t xme_hash_guests(uint32_t guests, const uint64_t *bases, const uint32_t *page_counts, _Inout_ uint8_t *flags, const uint32_t *flag_offsets, uint64_t zero_hash, _Inout_ uint64_t *keys, _Inout_ double *stats)',
      ) as HashGuests,
      keysFromHashes: lib.func(
        'uint32_t xme_keys_from_hashes(const uint64_t *hashes, const uint8_t *flags, uint8_t want, uint32_t count, uint32_t first_index, _Inout_ uint64_t *keys, uint32_t fill)',
      ) as KeysFromHashes,
      sortKeys: lib.func('void xme_sort_keys(_Inout_ uint64_t *keys, uint32_t n, _Inout_ uint64_t *scratch)') as SortKeys,
      confirmRuns: lib.func(
        'uint32_t xme_confirm_runs(_Inout_ uint64_t *keys, uint32_t n, const uint64_t *bases, const uint8_t *flags, const uint32_t *flag_offsets, _Inout_ uint32_t *bounds, _Inout_ uint64_t *scratch, _Inout_ double *compared)',
      ) as ConfirmRuns,
    };
    const zero = new BigUint64Array(1);
    fns.hashPages(Number(koffi.address(Buffer.alloc(PAGE_SIZE))), 1, zero);
    loaded = { engine: new NativeScanEngine(fns, zero[0]!) };
  } catch (error) {
    loaded = { reason: error instanceof Error ? error.message : String(error) };
  }
  return loaded;
}
