/**
 * Reading guest pages without making the host back them. On QEMU guest RAM is a tmpfs file, and a page the
 * guest never touched is a hole that costs the host nothing — but a read through the mapping makes tmpfs
 * allocate it (there is no shared zero page for shmem). A harness that hashed all guest memory would
 * therefore fill the host with pages only it touched, and every "host-resident" figure would measure the
 * harness. Holes are all zeros by definition: callers that know the residency snapshot use these helpers
 * and never read a hole.
 */
import type { Guest } from '../backends/types.ts';
import { ZERO_PAGE } from '../vocabulary.ts';

/** Per guest (same order as the guests): 1 = backed by the host, 0 = hole; undefined = all backed / unknown. */
export type Residency = readonly (Uint8Array | undefined)[];

/** The bytes of one guest page; a hole is ZERO_PAGE and is not read. */
export function pageBytes(guest: Guest, gfn: number, residency: Uint8Array | undefined): Buffer {
  return residency !== undefined && residency[gfn] === 0 ? ZERO_PAGE : guest.pages(gfn, 1);
}

/** Runs [first, first + count) of backed pages, in order; the whole range when residency is unknown. */
export function* backedRuns(pageCount: number, residency: Uint8Array | undefined): Generator<{ first: number; count: number }> {
  if (!residency) {
    if (pageCount > 0) yield { first: 0, count: pageCount };
    return;
  }
  let gfn = 0;
  while (gfn < pageCount) {
    while (gfn < pageCount && residency[gfn] === 0) gfn++;
    const first = gfn;
    while (gfn < pageCount && residency[gfn] !== 0) gfn++;
    if (gfn > first) yield { first, count: gfn - first };
  }
}
