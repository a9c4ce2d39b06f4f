/**
 * The sharing ledger of one strategy in one run: which guest pages are (accounted as) backed by one frame.
 *
 * THE COW DEFINITION (one for every backend; COW_DEFINITION below is the same text for run.json, and the README's
 * "How each number is measured" explains it to users):
 *   A page is *in shared state* from the moment the ledger shares it until the guest first writes it.
 *   A write by a guest to a page in shared state is one CoW write-fault. The page then leaves its frame.
 *   The other pages of that frame stay in shared state — also a lone survivor whose partners were all
 *   written: it is still write-protected, and its own first write is a fault too (one that needs no copy,
 *   `cow_copies` does not count it). This is what Xen does (mem_sharing: the last gfn of a shared page stays
 *   p2m_ram_shared until written, and every unshare lowers the domain's shr_pages by one), so the count does
 *   not depend on how writes fall into ticks: two writes to a pair count 2, in one tick or in two.
 *   The harness never unshares; a page leaves shared state only by being written.
 *
 * apply() verifies every proposed group byte by byte right before accepting it — pages whose bytes differ
 * are never shared, whatever a strategy's hash said — refuses malformed groups (a page listed twice, pages
 * outside memory), and says why. Verified groups join the pages already in shared state: a proposed page
 * that is already on a frame brings that frame's pages along (they are byte-identical, unwritten since).
 *
 * detectCow() (this class) is the QEMU method: every page in shared state is re-read and re-hashed; a page
 * whose bytes changed was written while shared. A lower bound — a write that stores the bytes already there
 * is invisible to it (a hypervisor sees it) — and hash-based (a 64-bit collision would hide a write).
 * It is xme's instrument, not the mechanism: a real host takes a write-protect fault instead, a cost per
 * fault, not per shared page (CowFaultModel below), so its CPU is billed to instrument_cpu_ms.
 */
import type { Guest } from '../backends/types.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import type { MetricDeclarations, ShareGroup } from './types.ts';
import type { PageRef } from '../vocabulary.ts';
import { pageBytes, type Residency } from './resident-pages.ts';
import { ZERO_PAGE } from '../vocabulary.ts';
import { PackedGroup } from './packed-group.ts';
import { gfnOfIndex, guestOfIndex, MAX_GUEST_PAGES, MAX_GUESTS } from '../hashing/scan-engine.ts';
import type { CowFaultCost, MeasuredCowFaultCost } from '../host/cow-break.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';

export const COW_METHOD_CONTENT_REREAD = 'content-reread';

/** The definition every ledger follows, for run.json and the docs (details in the header above). */
export const COW_DEFINITION =
  'a write by a guest to a page in shared state (shared by the ledger and not written since) is one CoW write-fault; the page leaves its frame; ' +
  "the frame's other pages stay in shared state, a lone survivor included, until each is written (as in Xen); cow_copies counts the faults that needed a copy";

export interface RefusedGroup {
  pages: PageRef[];
  reason: string;
}

export interface ApplyResult {
  groupsApplied: number;
  /** Pages newly brought into shared state by this apply. */
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
  /** Guest pages in shared state: mapped to a frame by sharing and not written since (Xen: Σ shr_pages). */
  sharedPages: number;
  /** Distinct frames backing the shared pages. */
  framesUsed: number;
  /** sharedPages − framesUsed: guest-physical memory the sharing frees. */
  framesSaved: number;
  /** Shared pages whose bytes are all zero (verified by the ledger, not taken from the strategy). */
  zeroPagesShared: number;
  /** Frames saved counting only pages the host really backs (undefined where the backend cannot tell). */
  hostFramesSaved?: number;
  /** framesSaved split by where the sharing lies (savedWhere below); undefined where the ledger cannot tell (Xen's counters). */
  savedWhere?: SavedWhere;
  cowFaults: number;
  /** CoW faults that needed a copy (the frame still had other users); the rest hit a lone survivor. */
  cowCopies: number;
  perGuest: { sharedPages: number; cowFaults: number }[];
  /**
   * Free frames in reclaimed state (reclaimFree, "FREE PAGES RECLAIMED" below): counted apart, never in
   * sharedPages, framesSaved or zeroPagesShared. Undefined where the ledger reclaims nothing (no reclaimFree).
   */
  reclaimedFree?: number;
  /** reclaimedFree counting only frames the host backs (undefined where residency is unknown). */
  hostReclaimedFree?: number;
  /** Reclaimed frames that the next tick's classes no longer found free (each left reclaimed state). */
  reclaimFaults?: number;
}

/**
 * Frames saved, split by where the sharing lies, as the literature reports it (Barker et al., ATC'12: zero pages
 * apart, then sharing within one VM and across VMs). A frame backing m shared pages saves m − 1 frames:
 * - a zero frame (all bytes 0): all m − 1 go to `zero`;
 * - any other frame, whose m pages lie in k distinct guests: k − 1 go to `acrossGuests` (one copy per guest
 *   would be needed without sharing between guests) and m − k to `withinGuest` (the duplicates inside each guest).
 * So zero + withinGuest + acrossGuests = framesSaved, exactly.
 */
export interface SavedWhere {
  zero: number;
  withinGuest: number;
  acrossGuests: number;
}

/** Adds one frame's saving to a split: `guestsOf` lists the guest of each of its pages. */
export function addFrameSaving(split: SavedWhere, zero: boolean, guestsOf: Iterable<number>): void {
  let members = 0;
  const guests = new Set<number>();
  for (const guest of guestsOf) {
    members++;
    guests.add(guest);
  }
  if (members < 2) return;
  if (zero) split.zero += members - 1;
  else {
    split.acrossGuests += guests.size - 1;
    split.withinGuest += members - guests.size;
  }
}

/**
 * FREE PAGES RECLAIMED — the one deliberate exception to "pages whose bytes differ are never shared".
 *
 * A frame the guest kernel holds on its free lists holds stale bytes that no one will read: the kernel hands it
 * out to be written (a user page is zeroed, a page-cache page filled, a slab initialised). So a host may take
 * it back and back it by one zero frame until the guest uses it again, as Chiang et al. (VEE'13) do on Xen;
 * on QEMU the ledger accounts it. Its bytes differ from zero and from each other, so such frames never go
 * through apply()'s byte verification and are never counted as shared: reclaimFree() keeps them in a state of
 * their own, `reclaimedFree`, apart from sharedPages and framesSaved (results: reclaimed_free_pages).
 *
 * Which frames: only those the guest's page classes (harness/introspection/page-classes.ts, read from struct
 * page at a pause) found free at this tick — the strategy (semantic-free) proposes the whole set every tick,
 * and with it what changed since its last proposal (FreeChanges: the frames whose membership may differ, and the
 * membership itself): a ledger that took that last proposal updates its reclaimed state frame by frame, as a real
 * host acts only on frames that became free or were taken (the frames that left shared state since are looked at
 * again too); any other ledger, or after a gap, reads the whole set. Both give the same reclaimed state.
 * A frame already in shared state stays there (it is saved as shared; a frame is in one state at a time), and
 * apply() refuses a page in reclaimed state (it is not data to compare).
 *
 * Why a pause is enough here (accounting, QEMU): the guests are paused from the classification to this call
 * and nothing is remapped, so no guest can take a frame between "found free" and "reclaimed". Whether it stays
 * free is what the next tick's classes say: a reclaimed frame they no longer find free was allocated meanwhile,
 * which on a real host is a fault on its first write (the zero frame is copy-on-write), and here it is one
 * *reclaim fault* (reclaim_faults): the frame leaves reclaimed state, as a written page leaves its frame on a
 * CoW fault. A lower bound: a frame allocated and freed again between two ticks is free at both and its fault
 * is not seen. A tick whose classes are unknown (refused) releases every reclaimed frame, uncounted as
 * faults: the ledger does not keep what it can no longer check. On Xen the enforced ledger reclaims for real
 * (enforced-ledger.ts, ZeroBackedFrames): the hypervisor backs the frames by one zero frame while the guests are
 * still paused from their classification, and a write unshares the frame (a reclaim fault the hypervisor reports,
 * p2m type by p2m type); the KSM ledger does not reclaim (no reclaimFree).
 */
export type FreeProposal = { frames: readonly ArrayLike<number>[]; changes?: FreeChanges } | { unknown: string };

/** A free-frame proposal as what changed since the one before it from the same proposer (FreeProposal.changes). */
export interface FreeChanges {
  /** This proposal's number, unique in the process; `since`: the one it follows (undefined: none). */
  serial: number;
  since: number | undefined;
  /** Per guest, the frames whose membership may differ from proposal `since`'s (a superset is fine). */
  touched: readonly ArrayLike<number>[];
  /** Per guest, per frame, 1 if it is proposed now: valid during this tick only (the proposer updates it in place). */
  member: readonly ArrayLike<number>[];
}

export interface ReclaimResult {
  /** Frames in reclaimed state after the call. */
  reclaimed: number;
  /** Of those, frames newly reclaimed by this call. */
  newlyReclaimed: number;
  /** Reclaimed frames no longer proposed as free: one reclaim fault each. */
  faults: number;
  /** Reclaimed frames let go because the free frames were unknown this tick (not faults). */
  released: number;
  /** Proposed frames not taken, with why (in shared state already, outside guest memory). */
  refused: RefusedGroup[];
}

export const REFUSED_RECLAIMED = 'page is a reclaimed free frame (reclaimFree), not data to compare';
/** Refusals for the bytes themselves (apply's comparison): what a key that proposed them got wrong. */
export const REFUSED_BYTES_DIFFER = 'bytes differ from the group’s first page';
export const REFUSED_NO_SAME_BYTES = 'no other page of the group has the same bytes';

/**
 * COST: MECHANISM AND INSTRUMENT. What a strategy costs per tick is split in two (tick-loop.ts, samples.csv):
 * the mechanism — what a real system doing this sharing would pay: the scan, the byte confirmation, the share
 * calls, and the CoW handling, which a real host pays per write-protect fault — and the instrument — what xme
 * pays to watch it on QEMU: detecting writes by re-reading every shared page (content-reread) and the hash of
 * each frame as it is made that the re-read compares with (applyInstrumentCpuMs), the residency
 * snapshot, the copy of anonymous RAM, the observation of KSM. The CoW handling is modelled: faults this tick
 * × the per-fault cost measured on this host for the kind of sharing the ledger stands for (cowFaultModel).
 *
 * - 'linux-ksm-cow-break': a Linux host merging pages as KSM does (the accounted ledger models this on QEMU;
 *   KSM is it): one KSM CoW break, measured by harness/host/cow-break.ts.
 * - 'xen-unshare': Xen's unshare of a shared gfn (enforced-ledger.ts): a slot, not measured yet.
 */
export type CowFaultModel = 'linux-ksm-cow-break' | 'xen-unshare';

/** The per-fault costs a run has, by model (run.json cowFaultCost); a model absent or 'not measured' leaves cow_model_cpu_ms empty. */
export type CowFaultCosts = Partial<Record<CowFaultModel, CowFaultCost>>;

/** The modelled CoW handling of `faults` faults: faults × the measured per-fault cost, in ms. */
export function cowModelCpuMs(faults: number, cost: MeasuredCowFaultCost): number {
  return (faults * cost.value) / 1e6;
}

/** What every ledger offers the runner; the mode and the CoW method come from the ledger that measured. */
export interface Ledger {
  readonly strategy: string;
  readonly mode: 'accounted' | 'enforced';
  /** Short name for the CSV's cow_method column. */
  readonly cowMethod: string;
  /**
   * 'lower bound' where some writes cannot be seen (content re-read misses identical-bytes writes);
   * 'upper bound' where every write is counted and some events that are not writes too (Xen also unshares when
   * the hypervisor itself reads a shared page for the guest);
   * 'host-wide' where the count is the host kernel's for every process (KSM's cow_ksm), not only the run's.
   */
  readonly cowCount: 'lower bound' | 'upper bound' | 'host-wide';
  /** One sentence for run.json and summary.csv: how CoW faults were counted and what the count bounds. */
  readonly cowMethodDescription: string;
  apply(groups: ShareGroup[]): ApplyResult | Promise<ApplyResult>;
  /** Free frames counted as reclaimed, apart from shared ones ("FREE PAGES RECLAIMED" above); absent: this ledger reclaims none. */
  reclaimFree?(proposal: FreeProposal): ReclaimResult | Promise<ReclaimResult>;
  detectCow(): CowEvent[] | Promise<CowEvent[]>;
  stats(): LedgerStats;
  /** Per guest, which pages the host really backs (1 = backed); accounted ledgers use it for hostFramesSaved. */
  setHostResidency?(maps: Residency): void;
  /** Figures only this kind of ledger has (e.g. hypercalls), named with their unit; each one in declaredMetrics. */
  extraMetrics(): Record<string, number>;
  /** What extraMetrics() gives, with unit and method (as Strategy.declaredMetrics): for summary.csv. */
  readonly declaredMetrics: MetricDeclarations;
  /**
   * Where the sharing is done outside the harness (ksmd), the CPU that mechanism spent since the previous
   * call, and how it was measured: the tick's cost is that, not the harness thread's (which only observed).
   */
  mechanismCpu?(): { cpuMs: number; method: string };
  /** The per-fault cost that models this ledger's CoW faults on a real system (see CowFaultModel). */
  readonly cowFaultModel: CowFaultModel;
  /**
   * Of the harness thread's CPU in the last apply(), the part that was the instrument's, not the mechanism's
   * (the enforced ledger: its verifier's re-read of shared pages and its reads of the hypervisor's counters),
   * in ms; absent: all of apply() is the mechanism (byte confirmation, share calls).
   */
  applyInstrumentCpuMs?(): number;
  /** Release what the ledger holds open (file descriptors). */
  close?(): void;
  /**
   * The frames in shared state, each as its pages' keys (the scan engine's packed index, guest · 2^24 + gfn), for
   * attributing frames saved to page classes (introspection/saved-by-class.ts); absent where the ledger does not
   * know which pages share a frame (Xen's counters). Read only: the arrays are the ledger's own.
   */
  sharedFrames?(): Iterable<readonly number[]>;
  /** Per guest, 1 for a frame in reclaimed-free state (reclaimFree); undefined before the first reclaim. */
  reclaimedFrames?(): readonly Uint8Array[] | undefined;
  /**
   * True when every page is in shared state on one frame, exact at scan time (StrategyContext.sharedOnOneFrame):
   * verified when shared, and detectCow has run this tick. Absent where the ledger cannot say so at scan time.
   */
  sameFrame?(pages: readonly PageRef[]): boolean;
  /**
   * Per guest, per page, the id of the frame it is on in shared state, 0 if none; exact at scan time as
   * sameFrame (and offered where it is). The ledger's own columns, for reading (StrategyContext.sharedFrameIds).
   */
  sharedFrameIds?(): readonly ArrayLike<number>[];
}

interface Frame {
  members: number[];
  /** The bytes' hash when merged, for detectCow (the instrument's: a real host write-protects instead). */
  hash: bigint;
  /** Whether the bytes are zeros, for the zero / within / across split (the instrument's accounting). */
  zero: boolean;
}

// A page's key is the scan engine's packed index, guest · 2^24 + gfn: below 2^31 for the 64 guests a scenario may
// have, so V8 keeps keys as small integers in the ledger's maps and sets (2^32 made every key a heap number).
const GUEST_SHIFT = MAX_GUEST_PAGES;
const keyOf = (page: PageRef) => page.guest * GUEST_SHIFT + page.gfn;
const refOf = (key: number): PageRef => ({ guest: Math.floor(key / GUEST_SHIFT), gfn: key % GUEST_SHIFT });
const label = (page: PageRef) => `g${page.guest}:0x${page.gfn.toString(16)}`;

/**
 * A mark per guest page, in typed arrays: "listed by the current group", "proposed in this apply". A content
 * scan proposes every duplicate page of every guest each tick, mostly groups already in shared state; Sets of
 * those keys (one per group, one per apply) cost more than the rest of re-applying them. A stamp number
 * replaces clearing: renew() makes every mark stale at once (the arrays are cleared only when the 16-bit
 * stamp wraps, every 65,535 renewals). Keys are packed indices (guest · 2^24 + gfn, below 2^32).
 */
class PageMarks {
  private readonly marks: Uint16Array[];
  private stamp = 0;

  constructor(guests: readonly Guest[]) {
    this.marks = guests.map((g) => new Uint16Array(g.memoryPages));
  }

  /** A new stamp: no page carries it yet. */
  renew(): void {
    if (this.stamp === 0xffff) {
      for (const marks of this.marks) marks.fill(0);
      this.stamp = 0;
    }
    this.stamp++;
  }

  has(key: number): boolean {
    return this.marks[key >>> 24]![key & 0xffffff] === this.stamp;
  }

  /** Mark the page; true if it was marked already (since the last renew). */
  mark(key: number): boolean {
    const marks = this.marks[key >>> 24]!;
    const gfn = key & 0xffffff;
    if (marks[gfn] === this.stamp) return true;
    marks[gfn] = this.stamp;
    return false;
  }
}

/**
 * Page key → frame id (ids from 1), for the pages in shared state: a typed array per guest (4 bytes per guest
 * page) instead of a Map, whose look-up of each proposed page was most of re-applying a content scan's groups.
 * The same get/set/delete/has/size as the Map it replaces.
 */
class PageFrameIds {
  private readonly ids: Uint32Array[];
  size = 0;

  constructor(guests: readonly Guest[]) {
    this.ids = guests.map((g) => new Uint32Array(g.memoryPages));
  }

  /** Per guest, per page, its frame id (0: none): read-only views for Ledger.sharedFrameIds. */
  columns(): readonly ArrayLike<number>[] {
    return this.ids;
  }

  /** A key outside guest memory is in no frame, as in the Map. */
  get(key: number): number | undefined {
    const id = this.ids[key >>> 24]?.[key & 0xffffff];
    return id ? id : undefined;
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  set(key: number, id: number): void {
    if (id < 1 || id > 0xffffffff) throw new RangeError(`frame id ${id} outside 1 … 2^32 − 1`);
    const ids = this.ids[key >>> 24]!;
    const gfn = key & 0xffffff;
    if (ids[gfn] === 0) this.size++;
    ids[gfn] = id;
  }

  delete(key: number): void {
    const ids = this.ids[key >>> 24]!;
    const gfn = key & 0xffffff;
    if (ids[gfn] !== 0) this.size--;
    ids[gfn] = 0;
  }
}

export class AccountingLedger implements Ledger {
  readonly mode = 'accounted';
  readonly cowMethod = COW_METHOD_CONTENT_REREAD;
  // What it accounts stands for a Linux host sharing as KSM does: a write breaks CoW there.
  readonly cowFaultModel = 'linux-ksm-cow-break';
  readonly cowCount = 'lower bound';
  readonly cowMethodDescription: string;
  readonly declaredMetrics = {};
  /** Page key → id of the frame it is mapped to, for every page in shared state. */
  private readonly frameOf: PageFrameIds;
  private readonly frames = new Map<number, Frame>();
  private nextFrame = 1;
  private readonly cowFaultsPerGuest: number[];
  private cowCopies = 0;
  /** Per guest: which pages the host really backs (1) — set by the runner each tick where known. */
  private hostResidency: Residency | undefined;
  /** Per guest, 1 for a free frame in reclaimed state (reclaimFree); undefined until the first reclaim. */
  private reclaimed: Uint8Array[] | undefined;
  /** The bitmaps of the tick before, reused for the next (no allocation per tick). */
  private spareReclaimed: Uint8Array[] | undefined;
  private reclaimedCount = 0;
  private reclaimFaults = 0;
  /** The serial of the free proposal reclaimed last (FreeChanges), if the next may follow on from it. */
  private freeSerial: number | undefined;
  /** Pages that left shared state since the last reclaimFree (detectCow): a free one may be reclaimed now. */
  private leftShared: number[] = [];
  /** hostReclaimedFree, counted when stats() asks, for this residency and this reclaimed state. */
  private hostReclaimed: { residency: Residency; version: number; count: number } | undefined;
  private reclaimVersion = 0;

  constructor(
    readonly strategy: string,
    private readonly guests: readonly Guest[],
    private readonly hasher: PageHasher,
  ) {
    if (guests.length > MAX_GUESTS || guests.some((g) => g.memoryPages > MAX_GUEST_PAGES)) {
      throw new RangeError(`the ledger keys pages as guest · 2^24 + gfn: at most ${MAX_GUESTS} guests of at most 2^24 pages`);
    }
    this.cowFaultsPerGuest = guests.map(() => 0);
    this.frameOf = new PageFrameIds(guests);
    this.cowMethodDescription = `${COW_METHOD_CONTENT_REREAD}: each tick every page in shared state is re-read and re-hashed (${hasher.name}); a changed page was written while shared. Lower bound: a write that stores the bytes already there is not seen`;
  }

  /** A page's bytes; a hole in the host's backing is zeros and is not read (resident-pages.ts). */
  private page(ref: PageRef): Buffer {
    const guest = this.guests[ref.guest];
    if (!guest) throw new RangeError(`no guest ${ref.guest}`);
    return pageBytes(guest, ref.gfn, this.hostResidency?.[ref.guest]);
  }

  private zeroHash: bigint | undefined;

  /** A page's hash; a hole is the zero page by definition, so its hash is known without reading or hashing. */
  private hashOf(ref: PageRef): bigint {
    if (this.hostResidency?.[ref.guest]?.[ref.gfn] === 0) return (this.zeroHash ??= this.hasher.hashPage(ZERO_PAGE));
    return this.hasher.hashPage(this.page(ref));
  }

  private outside(ref: PageRef): boolean {
    return (
      !Number.isInteger(ref.guest) ||
      !Number.isInteger(ref.gfn) ||
      ref.guest < 0 ||
      ref.guest >= this.guests.length ||
      ref.gfn < 0 ||
      ref.gfn >= this.guests[ref.guest]!.memoryPages
    );
  }

  /** A page's bytes by key, without making a PageRef (a hole is zeros and is not read). */
  private pageOfKey(key: number): Buffer {
    const guest = Math.floor(key / GUEST_SHIFT);
    return pageBytes(this.guests[guest]!, key % GUEST_SHIFT, this.hostResidency?.[guest]);
  }

  /**
   * A group's pages as keys; a packed group (a content scan's, harness/sharing/packed-group.ts) gives them
   * without a PageRef per page. Pages outside guest memory are listed apart (they have no valid key).
   */
  private groupKeys(group: ShareGroup): { keys: number[]; outside: PageRef[] } {
    const keys: number[] = [];
    const outside: PageRef[] = [];
    if (group instanceof PackedGroup) {
      // The packed index is the key (GUEST_SHIFT is the scan engine's); a PageRef only for a page outside memory.
      const { guests } = this;
      for (const index of group.indices) {
        const guest = guestOfIndex(index);
        if (guest < guests.length && gfnOfIndex(index) < guests[guest]!.memoryPages) keys.push(index);
        else outside.push({ guest, gfn: gfnOfIndex(index) });
      }
    } else {
      for (const ref of group.pages) {
        if (this.outside(ref)) outside.push(ref);
        else keys.push(keyOf(ref));
      }
    }
    return { keys, outside };
  }

  private inGroup: PageMarks | undefined;
  private proposedThisApply: PageMarks | undefined;
  /** Frames made by this apply, with their bytes: fingerprinted for the instrument once the groups are done. */
  private unfingerprinted: { id: number; frame: Frame; bytes: Buffer }[] = [];
  /** Thread CPU of the last apply's fingerprinting, in ns (the enforced ledger adds it to its instrument's share). */
  fingerprintNs = 0n;

  /**
   * Of the last apply, the CPU spent on fingerprinting the frames it made (hash and zero test): that serves only
   * xme's CoW detection by re-read and its zero split. A real host shares on the byte comparison and then
   * write-protects, so it is the instrument's, not the mechanism's.
   */
  applyInstrumentCpuMs(): number {
    return Number(this.fingerprintNs) / 1e6;
  }

  /** Share these groups (byte-verified) in addition to what is already in shared state. */
  apply(groups: ShareGroup[]): ApplyResult {
    const result = this.applyGroups(groups);
    const from = threadCpuNs();
    for (const { id, frame, bytes } of this.unfingerprinted) {
      // A frame a later group of this apply merged into another is gone: that one is fingerprinted instead.
      if (this.frames.get(id) !== frame) continue;
      frame.hash = this.hasher.hashPage(bytes);
      frame.zero = bytes.equals(ZERO_PAGE);
    }
    this.unfingerprinted = [];
    this.fingerprintNs = threadCpuNs() - from;
    return result;
  }

  private applyGroups(groups: ShareGroup[]): ApplyResult {
    const proposedThisApply = (this.proposedThisApply ??= new PageMarks(this.guests));
    const inGroup = (this.inGroup ??= new PageMarks(this.guests));
    proposedThisApply.renew();
    const refused: RefusedGroup[] = [];
    let bytesCompared = 0;
    let pagesShared = 0;
    let groupsApplied = 0;
    for (const group of groups) {
      const { keys, outside } = this.groupKeys(group);
      inGroup.renew();
      const repeated = keys.find((key) => inGroup.mark(key));
      if (repeated !== undefined) {
        // A page cannot be shared with itself: accepting it would count a frame saved from nothing.
        refused.push({ pages: group.pages, reason: `group lists ${label(refOf(repeated))} twice (malformed proposal)` });
        continue;
      }
      for (const ref of outside) refused.push({ pages: [ref], reason: 'page is outside guest memory' });
      const candidates: number[] = [];
      for (const key of keys) {
        if (proposedThisApply.has(key)) refused.push({ pages: [refOf(key)], reason: 'page is already in another group' });
        else if (this.reclaimedCount > 0 && this.isReclaimedKey(key)) refused.push({ pages: [refOf(key)], reason: REFUSED_RECLAIMED });
        else candidates.push(key);
      }
      // The first candidate is the reference; a member already on the reference's frame needs no compare
      // (detectCow re-hashed it this tick and it is unwritten since). So a group re-proposed whole on its frame
      // (every tick, for most of what a scan finds) reads no page: the reference is read only for a compare.
      const reference = candidates[0];
      if (reference === undefined) continue;
      let referenceBytes: Buffer | undefined;
      const referenceFrame = this.frameOf.get(reference);
      const members: number[] = [reference];
      const differing: number[] = [];
      let allOnReferenceFrame = referenceFrame !== undefined;
      for (let i = 1; i < candidates.length; i++) {
        const key = candidates[i]!;
        const frame = this.frameOf.get(key);
        if (frame !== undefined && frame === referenceFrame) {
          members.push(key);
          continue;
        }
        bytesCompared += PAGE_SIZE;
        referenceBytes ??= this.pageOfKey(reference);
        if (this.pageOfKey(key).equals(referenceBytes)) {
          members.push(key);
          allOnReferenceFrame = false;
        } else differing.push(key);
      }
      if (differing.length) refused.push({ pages: differing.map(refOf), reason: REFUSED_BYTES_DIFFER });
      for (const key of candidates) proposedThisApply.mark(key);
      if (members.length < 2) {
        if (differing.length) refused.push({ pages: members.map(refOf), reason: REFUSED_NO_SAME_BYTES });
        continue;
      }
      groupsApplied++;
      // A re-proposal of what is already one frame (every tick for semantic sharing) changes nothing.
      if (allOnReferenceFrame) continue;
      pagesShared += this.merge(members, referenceBytes ?? this.pageOfKey(reference));
    }
    return { groupsApplied, pagesShared, refused, bytesCompared };
  }

  /** Put verified members (and the frames they are already on) onto one frame; returns pages new to shared state. */
  private merge(members: number[], bytes: Buffer): number {
    const keys = new Set<number>();
    let fresh = 0;
    for (const key of members) {
      const frame = this.frameOf.get(key);
      if (frame === undefined) {
        keys.add(key);
        fresh++;
        continue;
      }
      // Its frame's other pages have the same bytes (unwritten since they were verified): they come along.
      const old = this.frames.get(frame);
      if (old) {
        for (const member of old.members) keys.add(member);
        this.frames.delete(frame);
      }
    }
    const id = this.nextFrame++;
    const frame: Frame = { members: [...keys], hash: 0n, zero: false };
    this.frames.set(id, frame);
    // Fingerprinted at the end of apply: the guests are paused through it (unless a scenario scores them
    // running, pauseDuringScan false, where a write may land between compare and fingerprint as before).
    this.unfingerprinted.push({ id, frame, bytes });
    for (const key of keys) this.frameOf.set(key, id);
    return fresh;
  }

  private isReclaimedKey(key: number): boolean {
    return this.reclaimed?.[Math.floor(key / GUEST_SHIFT)]?.[key % GUEST_SHIFT] === 1;
  }

  /**
   * The free frames of this tick ("FREE PAGES RECLAIMED" above): reclaimed state becomes exactly the proposed
   * frames that are not in shared state; a frame reclaimed before and not proposed now is one reclaim fault.
   * `{ unknown }`: every reclaimed frame is let go, uncounted. Call it after setHostResidency, before apply.
   */
  reclaimFree(proposal: FreeProposal): ReclaimResult {
    const before = this.reclaimed;
    const refused: RefusedGroup[] = [];
    if ('unknown' in proposal) {
      const released = this.reclaimedCount;
      this.reclaimed = this.guests.map((g) => new Uint8Array(g.memoryPages));
      this.reclaimedCount = 0;
      this.reclaimVersion++;
      this.freeSerial = undefined;
      this.leftShared = [];
      return { reclaimed: 0, newlyReclaimed: 0, faults: 0, released, refused };
    }
    const changes = proposal.changes;
    if (changes && this.reclaimed && changes.since !== undefined && changes.since === this.freeSerial) return this.reclaimChanges(changes);
    if (proposal.frames.length !== this.guests.length) {
      throw new RangeError(`reclaimFree: free frames of ${proposal.frames.length} guests proposed, the ledger has ${this.guests.length}`);
    }
    const next = this.spareReclaimed ?? this.guests.map((g) => new Uint8Array(g.memoryPages));
    for (const map of next) map.fill(0);
    const anyShared = this.frameOf.size > 0;
    let reclaimed = 0;
    let newlyReclaimed = 0;
    let faults = 0;
    this.guests.forEach((guest, g) => {
      const map = next[g]!;
      const old = before?.[g];
      const inShared: PageRef[] = [];
      const outside: PageRef[] = [];
      const frames = proposal.frames[g]!;
      for (let i = 0; i < frames.length; i++) {
        const gfn = frames[i]!;
        if (!Number.isInteger(gfn) || gfn < 0 || gfn >= guest.memoryPages) outside.push({ guest: g, gfn });
        else if (map[gfn] === 1) continue;
        else if (anyShared && this.frameOf.has(g * GUEST_SHIFT + gfn)) inShared.push({ guest: g, gfn });
        else {
          map[gfn] = 1;
          reclaimed++;
          if (old?.[gfn] !== 1) newlyReclaimed++;
        }
      }
      if (old) for (let gfn = 0; gfn < old.length; gfn++) if (old[gfn] === 1 && map[gfn] !== 1) faults++;
      if (inShared.length) refused.push({ pages: inShared, reason: 'free frame already in shared state (saved there)' });
      if (outside.length) refused.push({ pages: outside, reason: 'page is outside guest memory' });
    });
    this.spareReclaimed = before;
    this.reclaimed = next;
    this.reclaimedCount = reclaimed;
    this.reclaimVersion++;
    this.reclaimFaults += faults;
    this.freeSerial = changes?.serial;
    this.leftShared = [];
    return { reclaimed, newlyReclaimed, faults, released: 0, refused };
  }

  /**
   * reclaimFree for a proposal that follows on from the one reclaimed last: only the frames it says may have
   * changed, and the pages that left shared state since, are looked at (the same rule as the whole set: reclaimed
   * = proposed and not in shared state). A reclaimed frame never enters shared state (apply refuses it), so no
   * other frame can change. Refused lists only the frames looked at.
   */
  private reclaimChanges(changes: FreeChanges): ReclaimResult {
    const reclaimedMaps = this.reclaimed!;
    if (changes.touched.length !== this.guests.length || changes.member.length !== this.guests.length) {
      throw new RangeError(`reclaimFree: free frames of ${changes.touched.length} guests proposed, the ledger has ${this.guests.length}`);
    }
    const inShared: PageRef[] = [];
    const outside: PageRef[] = [];
    let newlyReclaimed = 0;
    let faults = 0;
    let count = this.reclaimedCount;
    const anyShared = this.frameOf.size > 0;
    const look = (g: number, gfn: number): void => {
      const map = reclaimedMaps[g]!;
      if (!Number.isInteger(gfn) || gfn < 0 || gfn >= map.length) {
        outside.push({ guest: g, gfn });
        return;
      }
      const proposed = changes.member[g]![gfn] === 1;
      const shared = proposed && anyShared && this.frameOf.has(g * GUEST_SHIFT + gfn);
      if (shared) inShared.push({ guest: g, gfn });
      const reclaim = proposed && !shared;
      if (reclaim === (map[gfn] === 1)) return;
      if (reclaim) {
        map[gfn] = 1;
        count++;
        newlyReclaimed++;
      } else {
        map[gfn] = 0;
        count--;
        faults++;
      }
    };
    changes.touched.forEach((frames, g) => {
      for (let i = 0; i < frames.length; i++) look(g, frames[i]!);
    });
    for (const key of this.leftShared) look(Math.floor(key / GUEST_SHIFT), key % GUEST_SHIFT);
    this.leftShared = [];
    this.reclaimedCount = count;
    this.reclaimVersion++;
    this.reclaimFaults += faults;
    this.freeSerial = changes.serial;
    const refused: RefusedGroup[] = [];
    if (inShared.length) refused.push({ pages: inShared, reason: 'free frame already in shared state (saved there)' });
    if (outside.length) refused.push({ pages: outside, reason: 'page is outside guest memory' });
    return { reclaimed: count, newlyReclaimed, faults, released: 0, refused };
  }

  /** Reclaimed frames the host backs (hostReclaimedFree): counted on demand, for the residency of this tick (the instrument's). */
  private hostReclaimedFree(): number | undefined {
    const residency = this.hostResidency;
    const reclaimed = this.reclaimed;
    if (!reclaimed || residency === undefined || residency.length !== this.guests.length || !residency.every((map) => map !== undefined)) return undefined;
    const known = this.hostReclaimed;
    if (known && known.residency === residency && known.version === this.reclaimVersion) return known.count;
    let count = 0;
    reclaimed.forEach((map, g) => {
      const backed = residency[g]!;
      for (let gfn = 0; gfn < map.length; gfn++) if (map[gfn] === 1 && backed[gfn]) count++;
    });
    this.hostReclaimed = { residency, version: this.reclaimVersion, count };
    return count;
  }

  /** All these pages on one frame in shared state (Ledger.sameFrame): detectCow took every written page off its frame. */
  sameFrame(pages: readonly PageRef[]): boolean {
    if (pages.length < 2 || this.frameOf.size === 0) return false;
    const first = pages[0]!;
    if (this.outside(first)) return false;
    const frame = this.frameOf.get(keyOf(first));
    if (frame === undefined) return false;
    for (let i = 1; i < pages.length; i++) {
      const ref = pages[i]!;
      if (this.outside(ref) || this.frameOf.get(keyOf(ref)) !== frame) return false;
    }
    return true;
  }

  /** Ledger.sharedFrameIds: the columns themselves (the class-key proposer reads them for every key of every tick). */
  sharedFrameIds(): readonly ArrayLike<number>[] {
    return this.frameOf.columns();
  }

  /** True if this guest frame is in reclaimed-free state. */
  isReclaimed(ref: PageRef): boolean {
    return this.reclaimed?.[ref.guest]?.[ref.gfn] === 1;
  }

  /** Pages written since they were shared: each is one CoW fault and leaves its frame (see the header). */
  detectCow(): CowEvent[] {
    const events: CowEvent[] = [];
    for (const [id, frame] of this.frames) {
      const written: number[] = [];
      const kept = frame.members.filter((key) => {
        if (this.hashOf(refOf(key)) === frame.hash) return true;
        written.push(key);
        return false;
      });
      if (!written.length) continue;
      // Of w writers on a frame of m users, all but the last user needed a copy.
      this.cowCopies += kept.length > 0 ? written.length : written.length - 1;
      for (const key of written) {
        const ref = refOf(key);
        events.push(ref);
        this.cowFaultsPerGuest[ref.guest]!++;
        this.frameOf.delete(key);
        if (this.reclaimed) this.leftShared.push(key);
      }
      if (kept.length) frame.members = kept;
      else this.frames.delete(id);
    }
    return events;
  }

  /** Frames with two or more users, as page lists, for a hypervisor to enforce. */
  groupsForEnforcement(): PageRef[][] {
    return [...this.frames.values()].filter((frame) => frame.members.length >= 2).map((frame) => frame.members.map(refOf));
  }

  *sharedFrames(): Iterable<readonly number[]> {
    for (const frame of this.frames.values()) yield frame.members;
  }

  reclaimedFrames(): readonly Uint8Array[] | undefined {
    return this.reclaimed;
  }

  /** Pages currently in shared state (what detectCow re-reads). */
  get sharedPageCount(): number {
    return this.frameOf.size;
  }

  /** True if this guest page is currently in shared state. */
  isShared(ref: PageRef): boolean {
    return this.frameOf.has(keyOf(ref));
  }

  /**
   * Per guest, which pages the host really backs (e.g. allocated in the RAM file), snapshot of this tick: used
   * for hostFramesSaved and to never read a hole (it is zeros). Set it before detectCow and apply.
   */
  setHostResidency(maps: Residency): void {
    this.hostResidency = maps;
  }

  stats(): LedgerStats {
    const perGuest = this.guests.map((_, i) => ({ sharedPages: 0, cowFaults: this.cowFaultsPerGuest[i]! }));
    const residency = this.hostResidency;
    const hostKnown = residency !== undefined && residency.length === this.guests.length && residency.every((map) => map !== undefined);
    let zeroPagesShared = 0;
    let hostFramesSaved = 0;
    const savedWhere: SavedWhere = { zero: 0, withinGuest: 0, acrossGuests: 0 };
    for (const frame of this.frames.values()) {
      let resident = 0;
      const guestsOf: number[] = [];
      for (const key of frame.members) {
        const ref = refOf(key);
        perGuest[ref.guest]!.sharedPages++;
        guestsOf.push(ref.guest);
        if (hostKnown && residency[ref.guest]![ref.gfn]) resident++;
      }
      addFrameSaving(savedWhere, frame.zero === true, guestsOf);
      if (frame.zero) zeroPagesShared += frame.members.length;
      // On a real host, r backed pages of one content need one frame: r − 1 are freed (none if r = 0).
      hostFramesSaved += Math.max(0, resident - 1);
    }
    const sharedPages = this.frameOf.size;
    return {
      sharedPages,
      framesUsed: this.frames.size,
      framesSaved: sharedPages - this.frames.size,
      zeroPagesShared,
      hostFramesSaved: hostKnown ? hostFramesSaved : undefined,
      savedWhere,
      cowFaults: this.cowFaultsPerGuest.reduce((a, b) => a + b, 0),
      cowCopies: this.cowCopies,
      perGuest,
      // Apart from every figure above: reclaimed free frames are not shared (no byte verification).
      ...(this.reclaimed ? { reclaimedFree: this.reclaimedCount, hostReclaimedFree: this.hostReclaimedFree(), reclaimFaults: this.reclaimFaults } : {}),
    };
  }

  extraMetrics(): Record<string, number> {
    return {};
  }
}
