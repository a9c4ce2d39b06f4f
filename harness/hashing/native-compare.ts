/**
 * Pages compared across guests at memcmp's speed: page k of one range in every guest against guest 0's page k
 * (the semantic strategy's kernel code and rodata), in one native call per range (native/page-compare.c,
 * built and loaded as the scan engine is). Where the C does not build (no gcc) or XME_HASHER=wasm, the same
 * comparison in JS (Buffer.compare, ≈ 6 GB/s here: a crossing into C per page).
 */
import koffi from 'koffi';
import { PAGE_SIZE } from '../vocabulary.ts';
import { buildNative } from './native-build.ts';
import { viewAddresses } from './native-scan-engine.ts';

export interface AcrossGuests {
  /** Pages identical in every guest. */
  identical: number;
  /** A whole page per compare, up to and including the first guest that differs. */
  bytesCompared: number;
}

type CompareAcross = (guests: number, bases: BigUint64Array, count: number, firstDiff: Uint16Array, compared: Float64Array) => number;
type CompareSome = (guests: number, bases: BigUint64Array, count: number, which: Uint8Array, firstDiff: Uint16Array, compared: Float64Array) => number;
type PartitionAcross = (
  guests: number,
  bases: BigUint64Array,
  count: number,
  firstDiff: Uint16Array,
  representative: Uint16Array,
  paired: Uint8Array,
  compared: Float64Array,
) => number;

let native: { compare?: CompareAcross; compareSome?: CompareSome; partition?: PartitionAcross; reason?: string } | undefined;

function load(): { compare?: CompareAcross; compareSome?: CompareSome; partition?: PartitionAcross; reason?: string } {
  if (native) return native;
  if (process.env.XME_HASHER === 'wasm') return (native = { reason: 'XME_HASHER=wasm' });
  try {
    const lib = koffi.load(buildNative('page-compare'));
    const compare = lib.func(
      'uint32_t xme_compare_across(uint32_t guests, const uint64_t *bases, uint32_t count, _Out_ uint16_t *first_diff, _Inout_ double *compared)',
    ) as CompareAcross;
    const partition = lib.func(
      'uint32_t xme_partition_across(uint32_t guests, const uint64_t *bases, uint32_t count, const uint16_t *first_diff, _Inout_ uint16_t *representative, _Inout_ uint8_t *paired, _Inout_ double *compared)',
    ) as PartitionAcross;
    const compareSome = lib.func(
      'uint32_t xme_compare_across_some(uint32_t guests, const uint64_t *bases, uint32_t count, const uint8_t *which, _Inout_ uint16_t *first_diff, _Inout_ double *compared)',
    ) as CompareSome;
    native = { compare, compareSome, partition };
  } catch (error) {
    native = { reason: error instanceof Error ? error.message : String(error) };
  }
  return native;
}

/** Which comparison runs here, for the bench and run notes. */
export function compareEngineName(): string {
  const { compare, reason } = load();
  return compare ? 'native (harness/hashing/native/page-compare.c, memcmp)' : `JS Buffer.compare (${reason})`;
}

/**
 * Compare page k of every view with views[0]'s page k, k < count (each view holds at least count pages, the
 * same range of each guest): firstDiff[k] = the first guest that differs, 0 where all are identical.
 */
export function compareAcrossGuests(views: readonly Buffer[], count: number, firstDiff: Uint16Array, engine: 'native' | 'js' = 'native'): AcrossGuests {
  if (views.length > 65_536) throw new RangeError('at most 65,536 guests (a first differing guest is 16 bits)');
  if (firstDiff.length < count || views.some((view) => view.length < count * PAGE_SIZE)) throw new RangeError('views or firstDiff shorter than count pages');
  if (count === 0 || views.length === 0) return { identical: 0, bytesCompared: 0 };
  const { compare } = engine === 'native' ? load() : {};
  if (compare) {
    const compared = new Float64Array(1);
    // The views are held by the caller for this synchronous call: their memory does not move.
    const identical = compare(views.length, viewAddresses(views), count, firstDiff, compared);
    return { identical, bytesCompared: compared[0]! };
  }
  return compareInJs(views, count, undefined, firstDiff);
}

/**
 * compareAcrossGuests for the pages k with which[k] = 1 only, in one call however scattered they are (after
 * the first tick, the code and rodata pages not yet one frame are a few thousand runs of a page or two; a call
 * per run cost more than the comparing). firstDiff[k] = 0 for the pages not compared; `identical` counts only
 * pages compared.
 */
export function compareSomeAcrossGuests(
  views: readonly Buffer[],
  count: number,
  which: Uint8Array,
  firstDiff: Uint16Array,
  engine: 'native' | 'js' = 'native',
): AcrossGuests {
  if (views.length > 65_536) throw new RangeError('at most 65,536 guests (a first differing guest is 16 bits)');
  if (firstDiff.length < count || which.length < count || views.some((view) => view.length < count * PAGE_SIZE)) {
    throw new RangeError('views, which or firstDiff shorter than count pages');
  }
  if (count === 0 || views.length === 0) return { identical: 0, bytesCompared: 0 };
  const { compareSome } = engine === 'native' ? load() : {};
  if (compareSome) {
    const compared = new Float64Array(1);
    // The views are held by the caller for this synchronous call: their memory does not move.
    const identical = compareSome(views.length, viewAddresses(views), count, which, firstDiff, compared);
    return { identical, bytesCompared: compared[0]! };
  }
  return compareInJs(views, count, which, firstDiff);
}

/** The two compares in JS (Buffer.compare, a crossing into C per page): every page, or those with which[k] = 1. */
function compareInJs(views: readonly Buffer[], count: number, which: Uint8Array | undefined, firstDiff: Uint16Array): AcrossGuests {
  let identical = 0;
  let bytesCompared = 0;
  const reference = views[0]!;
  for (let k = 0; k < count; k++) {
    firstDiff[k] = 0;
    if (which && which[k] !== 1) continue;
    const start = k * PAGE_SIZE;
    const end = start + PAGE_SIZE;
    let differs = 0;
    for (let g = 1; g < views.length && differs === 0; g++) {
      bytesCompared += PAGE_SIZE;
      if (views[g]!.compare(reference, start, end, start, end) !== 0) differs = g;
    }
    firstDiff[k] = differs;
    if (differs === 0) identical++;
  }
  return { identical, bytesCompared };
}

export interface Partitioned {
  /** Pages where some class of identical bytes holds two guests or more. */
  paired: number;
  /** A whole page per compare. */
  bytesCompared: number;
}

/**
 * The pages compareAcrossGuests found differing (firstDiff[k] ≠ 0), partitioned into classes of identical bytes,
 * all pages of a range in one call: representative[k · guests + g] = the first guest of g's class, paired[k] = 1
 * where some class has two guests or more (the rest have no partner: nothing to propose). Pages with
 * firstDiff[k] = 0 are left as they are. On real guests with KASLR, thousands of code and rodata pages differ
 * in every guest each tick; one JS partition per page cost more than the comparison itself.
 */
export function partitionAcrossGuests(
  views: readonly Buffer[],
  count: number,
  firstDiff: Uint16Array,
  representative: Uint16Array,
  paired: Uint8Array,
  engine: 'native' | 'js' = 'native',
): Partitioned {
  const guests = views.length;
  if (guests > 65_536) throw new RangeError('at most 65,536 guests (a representative guest is 16 bits)');
  if (firstDiff.length < count || representative.length < count * guests || paired.length < count || views.some((view) => view.length < count * PAGE_SIZE)) {
    throw new RangeError('views, firstDiff, representative or paired shorter than count pages');
  }
  if (count === 0 || guests === 0) return { paired: 0, bytesCompared: 0 };
  const { partition } = engine === 'native' ? load() : {};
  if (partition) {
    const compared = new Float64Array(1);
    // The views are held by the caller for this synchronous call: their memory does not move.
    const pairedPages = partition(guests, viewAddresses(views), count, firstDiff, representative, paired, compared);
    return { paired: pairedPages, bytesCompared: compared[0]! };
  }
  let pairedPages = 0;
  let bytesCompared = 0;
  for (let k = 0; k < count; k++) {
    const d = firstDiff[k]!;
    if (d === 0) continue;
    const start = k * PAGE_SIZE;
    const end = start + PAGE_SIZE;
    const at = k * guests;
    const firsts = [0];
    for (let g = 0; g < d; g++) representative[at + g] = 0;
    let pairs = d > 1;
    for (let g = d; g < guests; g++) {
      let found = -1;
      for (const first of firsts) {
        bytesCompared += PAGE_SIZE;
        if (views[g]!.compare(views[first]!, start, end, start, end) === 0) {
          found = first;
          break;
        }
      }
      if (found >= 0) {
        representative[at + g] = found;
        pairs = true;
      } else {
        firsts.push(g);
        representative[at + g] = g;
      }
    }
    paired[k] = pairs ? 1 : 0;
    if (pairs) pairedPages++;
  }
  return { paired: pairedPages, bytesCompared };
}
