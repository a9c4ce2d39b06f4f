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

let native: { compare?: CompareAcross; reason?: string } | undefined;

function load(): { compare?: CompareAcross; reason?: string } {
  if (native) return native;
  if (process.env.XME_HASHER === 'wasm') return (native = { reason: 'XME_HASHER=wasm' });
  try {
    const lib = koffi.load(buildNative('page-compare'));
    const compare = lib.func(
      'uint32_t xme_compare_across(uint32_t guests, const uint64_t *bases, uint32_t count, _Out_ uint16_t *first_diff, _Inout_ double *compared)',
    ) as CompareAcross;
    native = { compare };
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
  let identical = 0;
  let bytesCompared = 0;
  const reference = views[0]!;
  for (let k = 0; k < count; k++) {
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
