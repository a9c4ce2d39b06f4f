/**
 * Where sharing comes from: a ledger's frames saved, attributed to the page classes of this tick
 * (page-classes.ts), and the part of one strategy's savings that another strategy's ledger also holds.
 *
 * THE ATTRIBUTION RULE (docs: scenarios/README.md, "Where sharing comes from"). A frame in shared state backing m
 * guest pages saves m − 1 frames. Its *keeper* is the page with the smallest key (guest · 2^24 + gfn: the lowest
 * guest, then the lowest frame number); each of the other m − 1 pages is one frame saved, counted in the class of
 * that page in its own guest. So the classes add up to frames_saved exactly, whatever the strategy, and two
 * ledgers that share the same pages attribute them alike (the keeper does not depend on the order in which a
 * ledger merged them). A zero frame is no exception: its saved pages fall in their own classes (mostly free).
 *
 * Classes are the classifier's, grouped into the report's buckets (SAVED_CLASSES): reserved and unknown frames
 * go to 'other' (nothing a strategy can key), page cache and shmem stay apart.
 */
import { gfnOfIndex, guestOfIndex } from '../hashing/scan-engine.ts';
import { PAGE_KINDS, type PageClasses, type PageKind } from './page-classes.ts';

export const SAVED_CLASSES = [
  'free',
  'pagecache',
  'shmem',
  'anon',
  'slab',
  'pagetable',
  'kernel_text',
  'kernel_rodata',
  'kernel_data',
  'module_text',
  'other',
] as const;
export type SavedClass = (typeof SAVED_CLASSES)[number];
export type SavedByClass = Record<SavedClass, number>;

const BUCKET_OF_KIND: Record<PageKind, SavedClass> = {
  free: 'free',
  pagecache: 'pagecache',
  shmem: 'shmem',
  anon: 'anon',
  slab: 'slab',
  pagetable: 'pagetable',
  'kernel-text': 'kernel_text',
  'kernel-rodata': 'kernel_rodata',
  'kernel-data': 'kernel_data',
  'module-text': 'module_text',
  reserved: 'other',
  unknown: 'other',
};
/** PAGE_KINDS index → SAVED_CLASSES index. */
const BUCKET = Uint8Array.from(PAGE_KINDS, (kind) => SAVED_CLASSES.indexOf(BUCKET_OF_KIND[kind]));

export function emptySavedByClass(): SavedByClass {
  return Object.fromEntries(SAVED_CLASSES.map((name) => [name, 0])) as SavedByClass;
}

/** The keeper of a frame: its smallest key. */
function keeperOf(members: readonly number[]): number {
  let keeper = members[0]!;
  for (let i = 1; i < members.length; i++) if (members[i]! < keeper) keeper = members[i]!;
  return keeper;
}

/** Calls `visit` with every saved page (every member of a frame but its keeper), as guest and frame number. */
function forEachSavedPage(frames: Iterable<readonly number[]>, visit: (guest: number, gfn: number) => void): void {
  for (const members of frames) {
    if (members.length < 2) continue;
    const keeper = keeperOf(members);
    for (const key of members) if (key !== keeper) visit(guestOfIndex(key), gfnOfIndex(key));
  }
}

/**
 * Frames saved by class. `classes[g]` must be guest g's classes at the tick the frames are in shared state; a
 * saved page outside its guest's classes (a guest the classes do not cover) is a bug and throws.
 */
export function savedByClass(frames: Iterable<readonly number[]>, classes: readonly PageClasses[]): SavedByClass {
  const counts = new Float64Array(SAVED_CLASSES.length);
  forEachSavedPage(frames, (guest, gfn) => {
    const of = classes[guest];
    if (!of || gfn >= of.frames) throw new RangeError(`saved page g${guest}:0x${gfn.toString(16)} has no class (classes of ${classes.length} guests)`);
    counts[BUCKET[of.kind[gfn]!]!]!++;
  });
  const result = emptySavedByClass();
  SAVED_CLASSES.forEach((name, i) => {
    result[name] = counts[i]!;
  });
  return result;
}

/**
 * Per guest, 1 for every page a ledger saves a frame by: its saved pages (the keeper rule above) and its
 * reclaimed free frames. `guestPages[g]` sizes guest g's map.
 */
export function savingPages(frames: Iterable<readonly number[]>, reclaimed: readonly Uint8Array[] | undefined, guestPages: readonly number[]): Uint8Array[] {
  const maps = guestPages.map((pages, g) => {
    const map = new Uint8Array(pages);
    const free = reclaimed?.[g];
    if (free) map.set(free.subarray(0, pages));
    return map;
  });
  forEachSavedPage(frames, (guest, gfn) => {
    const map = maps[guest];
    if (map && gfn < map.length) map[gfn] = 1;
  });
  return maps;
}

/** The pages `frames` saves a frame by (the keeper rule), as keys: to test against several ledgers' savingPages. */
export function savedKeys(frames: Iterable<readonly number[]>): Float64Array {
  const keys: number[] = [];
  for (const members of frames) {
    if (members.length < 2) continue;
    const keeper = keeperOf(members);
    for (const key of members) if (key !== keeper) keys.push(key);
  }
  return Float64Array.from(keys);
}

/** Of the pages `frames` (or their savedKeys) saves a frame by, how many are set in `other` (savingPages of another ledger). */
export function savedAlsoBy(frames: Iterable<readonly number[]> | Float64Array, other: readonly Uint8Array[]): number {
  const keys = frames instanceof Float64Array ? frames : savedKeys(frames);
  let found = 0;
  for (let i = 0; i < keys.length; i++) if (other[guestOfIndex(keys[i]!)]?.[gfnOfIndex(keys[i]!)] === 1) found++;
  return found;
}
