/**
 * Sharing enforced by the hypervisor (Xen): the same byte verification as the accounting ledger, then real
 * sharing calls. CoW write-faults follow the one definition in ledger.ts and are counted by the hypervisor:
 * Xen unshares a page on every write to it while it is shared (a lone survivor included) and lowers the
 * domain's shr_pages by one each time; the harness never unshares, so no guest write is missed. Writes of
 * identical bytes are counted too (the hypervisor traps the write, not the change), and so are Xen's own reads
 * of shared pages for the guest (below): the count is an upper bound of guest writes.
 */
import type { Backend, Guest, HypervisorCounters } from '../backends/types.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import type { UnmeasuredCowFaultCost } from '../host/cow-break.ts';
import { threadCpuNs } from '../util/thread-cpu.ts';
import {
  AccountingLedger,
  type ApplyResult,
  type CowEvent,
  type FreeProposal,
  type Ledger,
  type LedgerStats,
  type ReclaimResult,
  type RefusedGroup,
} from './ledger.ts';
import type { ShareGroup } from './types.ts';

export const COW_METHOD_HYPERVISOR = 'hypervisor';

/**
 * A documented slot: what one unshare costs Xen (__mem_sharing_unshare_page: a fresh frame, a 4 KiB copy and
 * a p2m update, on the faulting vCPU), the per-fault cost of this ledger's CoW model ('xen-unshare'). It is to
 * be measured in the Xen test host (scripts/xen-testhost), as harness/host/cow-break.ts measures Linux's CoW
 * break; until then enforced runs leave cow_model_cpu_ms empty and say so, rather than take a constant.
 */
export const XEN_UNSHARE_COST_SLOT: UnmeasuredCowFaultCost = {
  status: 'not measured',
  reason:
    "Xen's unshare cost per fault is not measured yet (a documented slot, XEN_UNSHARE_COST_SLOT in harness/sharing/enforced-ledger.ts, for the Xen test host): cow_model_cpu_ms stays empty on Xen",
};

type Enforcer = Required<Pick<Backend, 'share' | 'counters'>> & Pick<Backend, 'reclaimFree' | 'sharedGfns'>;

/**
 * Free frames reclaimed for real (Backend.reclaimFree: backed by one zero frame, Chiang et al. VEE'13), kept apart
 * from byte-verified sharing in every figure. Xen's counters cannot tell the two apart — shr_pages, the freed and
 * the used frames count both — so this ledger keeps which gfns it backed by which zero frame and subtracts them:
 * shared pages = Σ shr_pages − gfns backed by a zero frame; frames saved = Xen's freed frames − Σ over zero frames
 * (gfns − 1); frames used = Xen's used frames − zero frames. At each tick it asks the hypervisor which of those
 * gfns it still shares (HVMOP_get_mem_type, a query): the ones it no longer does were written by their guest and
 * unshared — one reclaim fault each, exact, from the hypervisor — and are taken off shr_pages' decrease, so that
 * CoW faults stay the unshares of byte-shared pages. The query is the instrument's, as the counter reads are.
 * A gfn backed by a zero frame that its guest allocated and has not written yet stays backed (Xen keeps it so) and
 * counted as reclaimed until it is written; the page classes' own reclaimed state (the verifier's) is what keeps
 * the strategy from proposing a frame twice. No strategy both reclaims free frames and shares zero pages by bytes
 * (semantic-free, semantic-union), so a gfn is never in both kinds of frame.
 */
class ZeroBackedFrames {
  /** Per guest, the zero frame (index into handles, + 1) backing each gfn; 0: none. */
  readonly frameOf: Uint16Array[];
  readonly handles: bigint[] = [];
  /** Per zero frame (index as handles), the gfns it backs. */
  readonly members: number[] = [];
  count = 0;
  /** Per guest, how many of its gfns a zero frame backs (kept with add and remove: stats() reads it every tick). */
  private readonly ofGuest: number[];

  constructor(guests: readonly Guest[]) {
    this.frameOf = guests.map((guest) => new Uint16Array(guest.memoryPages));
    this.ofGuest = guests.map(() => 0);
  }

  add(guest: number, gfn: number, handle: bigint): void {
    if (this.frameOf[guest]![gfn]) return;
    let index = this.handles.indexOf(handle);
    if (index < 0) {
      if (this.handles.length >= 0xffff) throw new RangeError('more than 65,535 zero frames');
      index = this.handles.push(handle) - 1;
      this.members.push(0);
    }
    this.frameOf[guest]![gfn] = index + 1;
    this.members[index]!++;
    this.ofGuest[guest]!++;
    this.count++;
  }

  remove(guest: number, gfn: number): void {
    const index = this.frameOf[guest]![gfn]!;
    if (!index) return;
    this.frameOf[guest]![gfn] = 0;
    this.members[index - 1]!--;
    this.ofGuest[guest]!--;
    this.count--;
  }

  gfnsOf(guest: number): number[] {
    const gfns: number[] = [];
    const map = this.frameOf[guest]!;
    for (let gfn = 0; gfn < map.length; gfn++) if (map[gfn]) gfns.push(gfn);
    return gfns;
  }

  perGuest(): readonly number[] {
    return this.ofGuest;
  }

  /** Frames the zero frames save: a zero frame backing m gfns saves m − 1. */
  framesSaved(): number {
    return this.members.reduce((sum, m) => sum + Math.max(0, m - 1), 0);
  }

  framesUsed(): number {
    return this.members.filter((m) => m > 0).length;
  }
}

export class EnforcedLedger implements Ledger {
  readonly mode = 'enforced';
  readonly cowMethod = COW_METHOD_HYPERVISOR;
  // An upper bound, not exact: in Xen 4.17 every copy the hypervisor makes from or to an HVM guest's memory
  // (__hvm_copy → hvm_translate_get_page) looks the page up with get_page_from_gfn(…, P2M_UNSHARE), reads
  // included. Emulating an instruction (an MMIO access, say) fetches its bytes that way, so the kernel code page
  // holding it is unshared without any write: guest-overhead-xen shows 40–50 such unshares of kernel code per
  // semantic set, where QEMU's re-read of the same kernel sees no write. No guest write is ever missed.
  // The Xen test host makes this more frequent than real hardware would: its emulated SVM has no DecodeAssists
  // (the hypervisor console lists only NPT), so Xen 4.17 also emulates — and fetches — every intercepted
  // control-register access and invlpg instead of reading the decoded operands from the VMCB.
  readonly cowCount = 'upper bound';
  readonly cowMethodDescription =
    `${COW_METHOD_HYPERVISOR}: decreases of each domain's shr_pages between ticks, i.e. every unshare (the harness never unshares). Xen unshares on every guest write to a shared page, identical bytes included, so no write is missed; it also unshares when the hypervisor itself reads a shared page for the guest (__hvm_copy with P2M_UNSHARE, e.g. fetching an instruction it emulates), so the count is an upper bound of guest writes: equal to them on data pages the hypervisor does not read (cowprobe: N + M exactly), above them on kernel code that does MMIO. Where free frames are reclaimed (backed by a zero frame), their unshares are reclaim faults, told apart by each gfn's p2m type (HVMOP_get_mem_type), not CoW faults`;
  readonly cowFaultModel = 'xen-unshare';
  readonly declaredMetrics = {
    hypercalls_total: {
      unit: 'hypercalls',
      method:
        'sharing hypercalls this ledger made since the repetition started: xc_memshr_nominate_gfn and xc_memshr_share_gfns, failed ones included (counter reads not counted)',
    },
  };
  private readonly verifier: AccountingLedger;
  private afterLastShare: HypervisorCounters | undefined;
  private readonly cowFaults: number[];
  private cowCopies = 0;
  private last: HypervisorCounters | undefined;
  /** Thread CPU ns of the last apply() spent observing (the verifier's re-read, the counter reads). */
  private applyInstrumentNs = 0n;
  hypercalls = 0;
  /** Free frames backed by a zero frame (reclaimFree), when the backend reclaims (see ZeroBackedFrames). */
  private zeroBacked: ZeroBackedFrames | undefined;
  private reclaimUnshares = 0;
  /** Per guest, the reclaim faults detectCow saw this tick, for reclaimFree to report (one query per tick). */
  private unsharedSinceLastLook: number[] | undefined;
  private readonly sharedGfns: NonNullable<Enforcer['sharedGfns']> | undefined;
  /** Present where the backend backs free frames by a zero frame for real (Xen); the runner checks for it. */
  readonly reclaimFree?: (proposal: FreeProposal) => Promise<ReclaimResult>;

  constructor(
    readonly strategy: string,
    private readonly guests: readonly Guest[],
    hasher: PageHasher,
    private readonly backend: Enforcer,
  ) {
    this.verifier = new AccountingLedger(strategy, guests, hasher);
    this.cowFaults = guests.map(() => 0);
    if (backend.reclaimFree && backend.sharedGfns) {
      const reclaimFree = backend.reclaimFree.bind(backend);
      const sharedGfns = backend.sharedGfns.bind(backend);
      this.sharedGfns = sharedGfns;
      this.reclaimFree = (proposal) => this.reclaimForReal(proposal, reclaimFree, sharedGfns);
    }
  }

  /** The gfns of guest `guest` this ledger has backed by a zero frame and not seen unshared (read only). */
  zeroBackedGfns(guest: number): number[] {
    return this.zeroBacked?.gfnsOf(guest) ?? [];
  }

  /**
   * The free frames of this tick: the verifier takes them into reclaimed state (so apply() refuses them as data,
   * as on QEMU), then the hypervisor backs those not yet backed by a zero frame. The guests are paused from their
   * classification to here (tick-page-classes.ts); the backend keeps them paused while it shares.
   */
  private async reclaimForReal(
    proposal: FreeProposal,
    reclaimFree: NonNullable<Enforcer['reclaimFree']>,
    sharedGfns: NonNullable<Enforcer['sharedGfns']>,
  ): Promise<ReclaimResult> {
    const accounted = this.verifier.reclaimFree(proposal);
    const zeroBacked = (this.zeroBacked ??= new ZeroBackedFrames(this.guests));
    const faults = this.takeReclaimUnshares(sharedGfns);
    if ('unknown' in proposal) {
      // Unknown classes propose nothing new; the frames Xen backs stay backed (only a write takes one back).
      return { reclaimed: zeroBacked.count, newlyReclaimed: 0, faults, released: 0, refused: accounted.refused };
    }
    const toBack = proposal.frames.map((frames, guest) => {
      const gfns: number[] = [];
      for (let i = 0; i < frames.length; i++) {
        const gfn = frames[i]!;
        if (!zeroBacked.frameOf[guest]![gfn] && this.verifier.isReclaimed({ guest, gfn })) gfns.push(gfn);
      }
      return gfns;
    });
    const outcome = await reclaimFree(this.guests, toBack);
    this.hypercalls += outcome.hypercalls;
    let newlyReclaimed = 0;
    if (outcome.zeroFrame !== undefined) {
      for (const ref of outcome.backed) {
        if (zeroBacked.frameOf[ref.guest]![ref.gfn]) continue;
        zeroBacked.add(ref.guest, ref.gfn, outcome.zeroFrame);
        newlyReclaimed++;
      }
    }
    const refused: RefusedGroup[] = [...accounted.refused, ...outcome.failed];
    return { reclaimed: zeroBacked.count, newlyReclaimed, faults, released: 0, refused };
  }

  /** This tick's reclaim faults: what detectCow saw already, else a look now (the first tick has no detectCow). */
  private takeReclaimUnshares(sharedGfns: NonNullable<Enforcer['sharedGfns']>): number {
    const perGuest = this.lookForReclaimUnshares(sharedGfns);
    return perGuest.reduce((a, b) => a + b, 0);
  }

  /**
   * Zero-backed gfns the hypervisor no longer shares (each written by its guest since): they leave the zero frame,
   * are counted as reclaim faults, and are returned per guest (detectCow takes them off shr_pages' decrease).
   */
  private lookForReclaimUnshares(sharedGfns: NonNullable<Enforcer['sharedGfns']>): number[] {
    if (this.unsharedSinceLastLook) {
      const seen = this.unsharedSinceLastLook;
      this.unsharedSinceLastLook = undefined;
      return seen;
    }
    const zeroBacked = this.zeroBacked;
    if (!zeroBacked || zeroBacked.count === 0) return this.guests.map(() => 0);
    return this.guests.map((guest, g) => {
      const gfns = zeroBacked.gfnsOf(g);
      const shared = sharedGfns(guest, gfns);
      let left = 0;
      gfns.forEach((gfn, i) => {
        if (shared[i]) return;
        zeroBacked.remove(g, gfn);
        left++;
      });
      this.reclaimUnshares += left;
      return left;
    });
  }

  /** Verify bytes (never share differing pages), then ask the hypervisor to share what passed. */
  async apply(groups: ShareGroup[]): Promise<ApplyResult> {
    // Bring the verifier's view up to date first: pages written since the last apply have left their frames
    // in the hypervisor, so they must not be taken as already verified. A re-read of every shared page: the
    // instrument's (the hypervisor itself knows), as is the counter read below; the verification and the
    // sharing calls are the mechanism's.
    const reread = threadCpuNs();
    this.verifier.detectCow();
    this.applyInstrumentNs = threadCpuNs() - reread;
    const verified = this.verifier.apply(groups);
    // Its fingerprints of the frames it made serve its own CoW detection by re-read: the instrument's too.
    this.applyInstrumentNs += this.verifier.fingerprintNs;
    const outcome = await this.backend.share(this.guests, this.verifier.groupsForEnforcement());
    this.hypercalls += outcome.hypercalls;
    const read = threadCpuNs();
    this.last = await this.backend.counters(this.guests);
    this.applyInstrumentNs += threadCpuNs() - read;
    this.afterLastShare = this.last;
    return {
      groupsApplied: outcome.shared.length,
      pagesShared: outcome.shared.reduce((sum, group) => sum + group.length, 0),
      refused: [...verified.refused, ...outcome.failed],
      bytesCompared: verified.bytesCompared,
    };
  }

  applyInstrumentCpuMs(): number {
    return Number(this.applyInstrumentNs) / 1e6;
  }

  /** Unshares since the last apply: one CoW fault per shr_pages decrease. */
  async detectCow(): Promise<CowEvent[]> {
    if (!this.afterLastShare) return [];
    const before = this.afterLastShare;
    this.last = await this.backend.counters(this.guests);
    // Unshares of zero-backed free frames are reclaim faults, not CoW faults of shared data (ZeroBackedFrames);
    // reclaimFree, later in the tick, reads what was seen here instead of asking again.
    const reclaimUnshares = this.sharedGfns && this.zeroBacked ? this.lookForReclaimUnshares(this.sharedGfns) : undefined;
    if (reclaimUnshares) this.unsharedSinceLastLook = reclaimUnshares;
    const events: CowEvent[] = [];
    this.last.sharedPagesPerGuest.forEach((now, guest) => {
      const drop = Math.max(0, before.sharedPagesPerGuest[guest]! - now - (reclaimUnshares?.[guest] ?? 0));
      this.cowFaults[guest]! += drop;
      for (let i = 0; i < drop; i++) events.push({ guest, gfn: -1 }); // the hypervisor does not say which page
    });
    // Unshares that copied lower the host's freed-frame count (nr_saved_mfns); a last user's does not.
    this.cowCopies += Math.max(0, before.freedFrames - this.last.freedFrames);
    this.afterLastShare = this.last;
    return events;
  }

  /** Figures from the hypervisor's counters, not from the harness's bookkeeping. */
  stats(): LedgerStats {
    // Less what backs free frames by zero frames (ZeroBackedFrames): that is reclaimed, not shared.
    const zero = this.zeroBacked;
    const zeroPerGuest = zero?.perGuest() ?? this.guests.map(() => 0);
    const perGuestShared = (this.last?.sharedPagesPerGuest ?? this.guests.map(() => 0)).map((shared, g) => Math.max(0, shared - zeroPerGuest[g]!));
    const sharedPages = perGuestShared.reduce((a, b) => a + b, 0);
    const framesSaved = Math.max(0, (this.last?.freedFrames ?? 0) - (zero?.framesSaved() ?? 0));
    return {
      sharedPages,
      framesUsed: Math.max(0, (this.last?.usedFrames ?? 0) - (zero?.framesUsed() ?? 0)),
      framesSaved,
      zeroPagesShared: this.verifier.stats().zeroPagesShared,
      // Xen populates every page of a domain's memory: what it frees, a host frees.
      hostFramesSaved: framesSaved,
      cowFaults: this.cowFaults.reduce((a, b) => a + b, 0),
      cowCopies: this.cowCopies,
      perGuest: perGuestShared.map((shared, i) => ({ sharedPages: shared, cowFaults: this.cowFaults[i]! })),
      ...(this.reclaimFree ? { reclaimedFree: zero?.count ?? 0, hostReclaimedFree: zero?.count ?? 0, reclaimFaults: this.reclaimUnshares } : {}),
    };
  }

  extraMetrics(): Record<string, number> {
    return { hypercalls_total: this.hypercalls };
  }
}
