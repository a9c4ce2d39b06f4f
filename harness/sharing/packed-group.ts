/**
 * A proposed group whose pages are packed page indices (guest << 24 | gfn, harness/hashing/scan-engine.ts) in
 * a typed array: a content scan proposes tens of thousands of pages per tick, and a JS object per page costs
 * more than hashing the page on a busy host (≈ 0.2 µs each, mostly the allocator's page faults). The PageRef
 * objects of the seam are made only when a ledger reads `pages`, so that work is the ledger's, and is billed
 * to it (tick_cpu_ms), not to the scan.
 */
import { gfnOfIndex, guestOfIndex } from '../hashing/scan-engine.ts';
import type { ShareGroup } from './types.ts';
import type { PageRef } from '../vocabulary.ts';

export class PackedGroup implements ShareGroup {
  private refs: PageRef[] | undefined;

  constructor(
    /** Packed page indices, in ascending order within a guest; not to be written. */
    readonly indices: Uint32Array,
    readonly zero: boolean,
  ) {}

  get pages(): PageRef[] {
    if (!this.refs) {
      const refs: PageRef[] = [];
      for (const index of this.indices) refs.push({ guest: guestOfIndex(index), gfn: gfnOfIndex(index) });
      this.refs = refs;
    }
    return this.refs;
  }

  get size(): number {
    return this.indices.length;
  }
}
