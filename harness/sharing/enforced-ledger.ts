/**
 * Sharing enforced by the hypervisor (Xen): the same byte verification as the accounting ledger, then real
 * sharing calls; CoW write-faults are the hypervisor's own unshares, seen as decreases of each guest's
 * shared-page count (Xen's shr_pages) that the harness did not cause (it never unshares).
 */
import type { Backend, Guest, HypervisorCounters } from '../backends/types.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import { SharingLedger, type ApplyResult, type CowEvent, type LedgerStats } from './ledger.ts';
import type { ShareGroup } from './types.ts';

export const COW_METHOD_HYPERVISOR = 'hypervisor';

type Enforcer = Required<Pick<Backend, 'share' | 'counters'>>;

export class EnforcedLedger {
  readonly cowMethod = COW_METHOD_HYPERVISOR;
  private readonly verifier: SharingLedger;
  private afterLastShare: number[] | undefined;
  private readonly cowFaults: number[];
  private last: HypervisorCounters | undefined;
  hypercalls = 0;

  constructor(
    readonly strategy: string,
    private readonly guests: readonly Guest[],
    hasher: PageHasher,
    private readonly backend: Enforcer,
  ) {
    this.verifier = new SharingLedger(strategy, guests, hasher);
    this.cowFaults = guests.map(() => 0);
  }

  /** Verify bytes (never share differing pages), then ask the hypervisor to share what passed. */
  async apply(groups: ShareGroup[]): Promise<ApplyResult> {
    const verified = this.verifier.apply(groups);
    const outcome = await this.backend.share(this.guests, this.verifier.groupsForEnforcement());
    this.hypercalls += outcome.hypercalls;
    this.last = await this.backend.counters(this.guests);
    this.afterLastShare = [...this.last.sharedPagesPerGuest];
    return {
      groupsApplied: outcome.shared.length,
      pagesShared: outcome.shared.reduce((sum, group) => sum + group.length, 0),
      refused: [...verified.refused, ...outcome.failed],
      bytesCompared: verified.bytesCompared,
    };
  }

  /** Unshares since the last apply: one CoW fault per page the hypervisor had to copy. */
  async detectCow(): Promise<CowEvent[]> {
    if (!this.afterLastShare) return [];
    this.last = await this.backend.counters(this.guests);
    const events: CowEvent[] = [];
    this.last.sharedPagesPerGuest.forEach((now, guest) => {
      const drop = Math.max(0, this.afterLastShare![guest]! - now);
      this.cowFaults[guest]! += drop;
      for (let i = 0; i < drop; i++) events.push({ guest, gfn: -1 }); // the hypervisor does not say which page
    });
    this.afterLastShare = [...this.last.sharedPagesPerGuest];
    return events;
  }

  /** Figures from the hypervisor's counters, not from the harness's bookkeeping. */
  stats(): LedgerStats {
    const perGuestShared = this.last?.sharedPagesPerGuest ?? this.guests.map(() => 0);
    const sharedPages = perGuestShared.reduce((a, b) => a + b, 0);
    const usedFrames = this.last?.usedFrames ?? 0;
    return {
      sharedPages,
      framesUsed: usedFrames,
      framesSaved: this.last?.freedFrames ?? 0,
      zeroPagesShared: this.verifier.stats().zeroPagesShared,
      cowFaults: this.cowFaults.reduce((a, b) => a + b, 0),
      perGuest: perGuestShared.map((shared, i) => ({ sharedPages: shared, cowFaults: this.cowFaults[i]! })),
    };
  }
}
