/**
 * What the classification must look at again this tick (page-classes.ts, classify): the frames whose class may
 * differ from the last verified tick's. Between two ticks of an idle real guest 0.01–4% of the struct pages
 * change (measured on real-idle, 3 × 512 MiB: 1 to 5,977 of 131,072 records per guest), so reading the
 * array once, in place, and classifying only those frames is most of the classification's cost saved.
 *
 * A frame's class depends on more than its own record: a tail takes its compound head's class, a frame inside
 * a free block is free by its block's head. So a changed frame brings its whole block as it was (its head and
 * order at the last tick: the extent it belonged to), and a head classified again brings its whole block as it
 * is now (the classification fills it). What else a class depends on is outside the array and is read every
 * tick in full, as before: the per-CPU lists and the modules list (a frame whose membership changed is redone
 * here too), each referenced file's inode and each slab cache's name.
 */
import { PAGE_SIZE } from '../vocabulary.ts';

/** A piece of the struct page array as read: its guest-physical start, its length and where it sits in the copy. */
export interface MemmapRange {
  physical: bigint;
  length: number;
  at: number;
}

/** What the delta needs of guest memory (KernelMemory). */
export interface PhysicalAccess {
  equalsPhysical(address: bigint, length: number, source: Buffer, sourceOffset: number): boolean;
  copyPhysical(address: bigint, length: number, target: Buffer, targetOffset: number, what: string): void;
}

/** Compared in blocks of this many bytes first, then in pages: most blocks of an idle guest are unchanged. */
const BLOCK = 16 * PAGE_SIZE;

/**
 * Brings `copy` up to date with guest memory, in place, and marks in `changed` (one byte per frame) each frame
 * whose struct page differs from the copy's, listing it in `list` too. Reads the array once (compared in guest
 * memory; only changed pages of it are copied). Returns how many records changed.
 */
export function refreshCopy(
  memory: PhysicalAccess,
  ranges: readonly MemmapRange[],
  copy: Buffer,
  stride: number,
  changed: Uint8Array,
  list: number[] = [],
): number {
  let records = 0;
  // The page as it was, and both as 32-bit words: a record is compared word by word, not by a call per record.
  const copyWords = copy.byteOffset % 4 === 0 ? new Uint32Array(copy.buffer, copy.byteOffset, copy.length >>> 2) : undefined;
  for (const range of ranges) {
    for (let block = 0; block < range.length; block += BLOCK) {
      const blockLength = Math.min(BLOCK, range.length - block);
      if (memory.equalsPhysical(range.physical + BigInt(block), blockLength, copy, range.at + block)) continue;
      for (let page = block; page < block + blockLength; page += PAGE_SIZE) {
        const length = Math.min(PAGE_SIZE, block + blockLength - page);
        const at = range.at + page;
        if (memory.equalsPhysical(range.physical + BigInt(page), length, copy, at)) continue;
        // The old records are needed to tell which changed: kept aside while the page is copied in.
        copy.copy(OLD_PAGE, 0, at, at + length);
        memory.copyPhysical(range.physical + BigInt(page), length, copy, at, 'vmemmap');
        for (let i = 0; i + stride <= length; i += stride) {
          if (sameRecord(copy, copyWords, at + i, i, stride)) continue;
          changed[(at + i) / stride] = 1;
          list.push((at + i) / stride);
          records++;
        }
      }
    }
  }
  return records;
}

/** A page of the copy as it was before a refresh (one per process: refreshCopy runs on one thread, to the end). */
const OLD_PAGE = Buffer.alloc(PAGE_SIZE);
const OLD_WORDS = new Uint32Array(OLD_PAGE.buffer, OLD_PAGE.byteOffset, PAGE_SIZE >>> 2);

/** Whether the record at `at` in the copy equals the one at `old` in OLD_PAGE (word by word where aligned). */
function sameRecord(copy: Buffer, copyWords: Uint32Array | undefined, at: number, old: number, stride: number): boolean {
  if (!copyWords || at % 4 !== 0 || old % 4 !== 0 || stride % 4 !== 0) return copy.compare(OLD_PAGE, old, old + stride, at, at + stride) === 0;
  const words = stride >>> 2;
  const a = at >>> 2;
  const b = old >>> 2;
  for (let w = 0; w < words; w++) if (copyWords[a + w] !== OLD_WORDS[b + w]) return false;
  return true;
}

/** The columns of the last verified tick that say which block a frame belonged to. */
export interface BlockColumns {
  /** Free: the block's first frame; compound: the head; else the frame itself. */
  head: Uint32Array;
  /** Free: the block's order; compound: the compound's order; else 0. */
  order: Uint8Array;
}

/**
 * The frames to classify again: every frame of `changed` (a list), with the whole block it belonged to at the
 * last tick (its head's extent). Marks `redo` (one byte per frame) and returns the frames marked, ascending.
 */
export function framesToRedo(changed: readonly number[], before: BlockColumns, redo: Uint8Array): Int32Array {
  const frames = redo.length;
  const marked: number[] = [];
  const mark = (frame: number) => {
    if (redo[frame] === 1) return;
    redo[frame] = 1;
    marked.push(frame);
  };
  // A block is marked once, however many of its frames changed: a tick in which the buddy allocator splits a
  // large free block changes thousands of its frames, and marking its 1,024 frames again for each was most of
  // such a tick's classification (13 ms of 29 for 3 × 512 MiB).
  const blocksMarked = new Set<number>();
  for (const frame of changed) {
    const head = before.head[frame]!;
    const order = before.order[frame]!;
    if (order === 0 || head > frame) mark(frame);
    else if (!blocksMarked.has(head)) {
      blocksMarked.add(head);
      for (let f = head, end = Math.min(frames, head + 2 ** order); f < end; f++) mark(f);
    }
  }
  return Int32Array.from(marked).sort();
}
