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
import { AccountingLedger, type ApplyResult, type CowEvent, type Ledger, type LedgerStats } from './ledger.ts';
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

type Enforcer = Required<Pick<Backend, 'share' | 'counters'>>;

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
    `${COW_METHOD_HYPERVISOR}: decreases of each domain's shr_pages between ticks, i.e. every unshare (the harness never unshares). Xen unshares on every guest write to a shared page, identical bytes included, so no write is missed; it also unshares when the hypervisor itself reads a shared page for the guest (__hvm_copy with P2M_UNSHARE, e.g. fetching an instruction it emulates), so the count is an upper bound of guest writes: equal to them on data pages the hypervisor does not read (cowprobe: N + M exactly), above them on kernel code that does MMIO`;
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

  constructor(
    readonly strategy: string,
    private readonly guests: readonly Guest[],
    hasher: PageHasher,
    private readonly backend: Enforcer,
  ) {
    this.verifier = new AccountingLedger(strategy, guests, hasher);
    this.cowFaults = guests.map(() => 0);
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
    const events: CowEvent[] = [];
    this.last.sharedPagesPerGuest.forEach((now, guest) => {
      const drop = Math.max(0, before.sharedPagesPerGuest[guest]! - now);
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
    const perGuestShared = this.last?.sharedPagesPerGuest ?? this.guests.map(() => 0);
    const sharedPages = perGuestShared.reduce((a, b) => a + b, 0);
    const framesSaved = this.last?.freedFrames ?? 0;
    return {
      sharedPages,
      framesUsed: this.last?.usedFrames ?? 0,
      framesSaved,
      zeroPagesShared: this.verifier.stats().zeroPagesShared,
      // Xen populates every page of a domain's memory: what it frees, a host frees.
      hostFramesSaved: framesSaved,
      cowFaults: this.cowFaults.reduce((a, b) => a + b, 0),
      cowCopies: this.cowCopies,
      perGuest: perGuestShared.map((shared, i) => ({ sharedPages: shared, cowFaults: this.cowFaults[i]! })),
    };
  }

  extraMetrics(): Record<string, number> {
    return { hypercalls_total: this.hypercalls };
  }
}
