/**
 * The sharing ledger of one strategy in one run: which guest pages are (accounted as) backed by one frame.
 *
 * apply() verifies every proposed group byte by byte right before accepting it — pages whose bytes differ
 * are never shared, whatever a strategy's hash said — and says why anything was refused.
 * detectCow() finds copy-on-write write-faults the way QEMU allows: every shared page is re-read and
 * re-hashed; a page whose content changed since it was shared took a write while shared, which on a
 * sharing hypervisor is a CoW fault. It is a lower bound (a write of identical bytes is invisible), and
 * the method is named in every CSV row (COW_METHOD).
 */
import type { Guest } from '../backends/types.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import type { PageRef, ShareGroup } from './types.ts';

export const COW_METHOD_CONTENT_REREAD = 'content-reread';

export interface RefusedGroup {
  pages: PageRef[];
  reason: string;
}

export interface ApplyResult {
  groupsApplied: number;
  pagesShared: number;
  refused: RefusedGroup[];
  bytesCompared: number;
}

export interface CowEvent {
  guest: number;
  /** −1 where only a count is known (hypervisor counters). */
  gfn: number;
}

export interface LedgerStats {
  /** Guest pages backed by a frame that another guest page also uses. */
  sharedPages: number;
  /** Distinct frames backing the shared pages. */
  framesUsed: number;
  /** sharedPages − framesUsed: memory the sharing would free. */
  framesSaved: number;
  zeroPagesShared: number;
  cowFaults: number;
  perGuest: { sharedPages: number; cowFaults: number }[];
}

interface LiveGroup {
  members: PageRef[];
  hash: bigint;
  zero: boolean;
}

const key = (page: PageRef) => page.guest * 2 ** 32 + page.gfn;

export class SharingLedger {
  private groups: LiveGroup[] = [];
  private readonly cowFaultsPerGuest: number[];

  constructor(
    readonly strategy: string,
    private readonly guests: readonly Guest[],
    private readonly hasher: PageHasher,
  ) {
    this.cowFaultsPerGuest = guests.map(() => 0);
  }

  private page(ref: PageRef): Buffer {
    const guest = this.guests[ref.guest];
    if (!guest) throw new RangeError(`no guest ${ref.guest}`);
    return guest.pages(ref.gfn, 1);
  }

  /** Replace the shared set with these groups, keeping only byte-verified pages. */
  apply(groups: ShareGroup[]): ApplyResult {
    const seen = new Set<number>();
    const live: LiveGroup[] = [];
    const refused: RefusedGroup[] = [];
    let bytesCompared = 0;
    let pagesShared = 0;
    for (const group of groups) {
      const members: PageRef[] = [];
      const differing: PageRef[] = [];
      let reference: Buffer | undefined;
      for (const ref of group.pages) {
        if (ref.guest < 0 || ref.guest >= this.guests.length || ref.gfn < 0 || ref.gfn >= this.guests[ref.guest]!.memoryPages) {
          refused.push({ pages: [ref], reason: 'page is outside guest memory' });
          continue;
        }
        if (seen.has(key(ref))) {
          refused.push({ pages: [ref], reason: 'page is already in another group' });
          continue;
        }
        const bytes = this.page(ref);
        if (!reference) {
          reference = bytes;
          members.push(ref);
          continue;
        }
        bytesCompared += bytes.length;
        if (bytes.equals(reference)) members.push(ref);
        else differing.push(ref);
      }
      if (differing.length) refused.push({ pages: differing, reason: 'bytes differ from the group’s first page' });
      if (members.length < 2) {
        if (members.length === 1 && group.pages.length > 1 && differing.length) {
          refused.push({ pages: members, reason: 'no other page of the group has the same bytes' });
        }
        continue;
      }
      for (const ref of members) seen.add(key(ref));
      live.push({ members, hash: this.hasher.hashPage(reference!), zero: group.zero === true });
      pagesShared += members.length;
    }
    this.groups = live;
    return { groupsApplied: live.length, pagesShared, refused, bytesCompared };
  }

  /** Pages written since they were shared: each is one CoW fault and leaves its group. */
  detectCow(): CowEvent[] {
    const events: CowEvent[] = [];
    const surviving: LiveGroup[] = [];
    for (const group of this.groups) {
      const unchanged = group.members.filter((ref) => {
        if (this.hasher.hashPage(this.page(ref)) === group.hash) return true;
        events.push({ guest: ref.guest, gfn: ref.gfn });
        this.cowFaultsPerGuest[ref.guest]!++;
        return false;
      });
      // A frame left with one user is no longer shared.
      if (unchanged.length >= 2) surviving.push({ ...group, members: unchanged });
    }
    this.groups = surviving;
    return events;
  }

  /** The verified groups as page lists, for a hypervisor to enforce. */
  groupsForEnforcement(): PageRef[][] {
    return this.groups.map((group) => group.members);
  }

  /** Pages currently in shared groups (what detectCow re-reads). */
  get sharedPageCount(): number {
    return this.groups.reduce((sum, group) => sum + group.members.length, 0);
  }

  /** True if this guest page is currently shared. */
  isShared(ref: PageRef): boolean {
    return this.groups.some((group) => group.members.some((m) => m.guest === ref.guest && m.gfn === ref.gfn));
  }

  stats(): LedgerStats {
    const perGuest = this.guests.map((_, i) => ({ sharedPages: 0, cowFaults: this.cowFaultsPerGuest[i]! }));
    let sharedPages = 0;
    let zeroPagesShared = 0;
    for (const group of this.groups) {
      sharedPages += group.members.length;
      if (group.zero) zeroPagesShared += group.members.length;
      for (const ref of group.members) perGuest[ref.guest]!.sharedPages++;
    }
    return {
      sharedPages,
      framesUsed: this.groups.length,
      framesSaved: sharedPages - this.groups.length,
      zeroPagesShared,
      cowFaults: this.cowFaultsPerGuest.reduce((a, b) => a + b, 0),
      perGuest,
    };
  }
}
