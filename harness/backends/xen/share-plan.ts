/**
 * Which pairs of nominated pages to hand to xc_memshr_share, so that the hypervisor never takes a p2m lock out
 * of order. Xen 4.17's share_pages() (xen/arch/x86/mm/mem_sharing.c) locks the p2m of the source's and the
 * client's domains, then, holding the per-page sharing locks, moves every gfn of the client's frame to the
 * source's frame with set_shared_p2m_entry(), which takes the p2m lock of *that gfn's* domain. When the client's
 * frame is already shared with a third domain (in the Xen test host: an intra-domain pair whose client frame
 * also backs the other guest's page, from an earlier tick) that lock is taken after the sharing lock, and the
 * hypervisor stops: "mm locking order violation: 24 > 16", Xen BUG at mm-locks.h:80 (seen in guest-overhead-xen,
 * content's second tick). So a share call is made only when every domain the client's frame may back is the
 * source's or the client's; otherwise the other direction is tried, and if neither is safe the page is refused
 * with the reason. FrameDomains remembers which domains each frame may back (a superset: unsharing is not
 * tracked, which only makes the check stricter).
 */
import type { PageRef } from '../../vocabulary.ts';

export interface NominatedPage {
  ref: PageRef;
  domid: number;
  /** The sharing handle Xen gave the page's frame (a frame already shared keeps its handle). */
  handle: bigint;
}

/** Per sharing handle, the domains whose gfns the frame may back. Keep one per backend (handles are unique). */
export class FrameDomains {
  private readonly byHandle = new Map<bigint, Set<number>>();

  nominated(page: NominatedPage): void {
    const set = this.byHandle.get(page.handle) ?? new Set<number>();
    set.add(page.domid);
    this.byHandle.set(page.handle, set);
  }

  domains(handle: bigint): ReadonlySet<number> {
    return this.byHandle.get(handle) ?? new Set();
  }

  /** A successful share: every gfn of `from`'s frame now belongs to `into`'s frame. */
  merged(into: bigint, from: bigint): void {
    const target = this.byHandle.get(into) ?? new Set<number>();
    for (const domid of this.byHandle.get(from) ?? []) target.add(domid);
    this.byHandle.set(into, target);
    this.byHandle.delete(from);
  }
}

/** The hypercall: share `client`'s frame into `source`'s (throws with the reason where Xen refuses). */
export type ShareCall = (source: NominatedPage, client: NominatedPage) => void;

export interface GroupOutcome {
  /** Pages now backed by one frame (the group's, whichever handle survived). */
  shared: PageRef[];
  failed: { pages: PageRef[]; reason: string }[];
  calls: number;
}

function covers(domains: ReadonlySet<number>, a: number, b: number): boolean {
  for (const domid of domains) if (domid !== a && domid !== b) return false;
  return true;
}

const UNSAFE =
  'not shared: it would merge two shared frames that back pages of a third domain, which Xen 4.17 does with its p2m locks out of order (Xen BUG at mm-locks.h:80)';

/** Share a byte-verified group (members nominated, in order) without ever asking Xen for an unsafe merge. */
export function shareGroup(members: readonly NominatedPage[], frames: FrameDomains, share: ShareCall, errorText: (error: unknown) => string): GroupOutcome {
  const outcome: GroupOutcome = { shared: [], failed: [], calls: 0 };
  if (members.length === 0) return outcome;
  let canonical = members[0]!.handle;
  /** Members known to be backed by the canonical frame: the possible partners of the next call. */
  const inFrame: NominatedPage[] = members.filter((m) => m.handle === canonical);
  const absorbed = new Set<bigint>([canonical]);
  for (const client of members) {
    if (absorbed.has(client.handle)) {
      if (!inFrame.includes(client)) inFrame.push(client);
      continue;
    }
    const clientDomains = new Set([...frames.domains(client.handle), client.domid]);
    const source = inFrame.find((s) => covers(clientDomains, s.domid, client.domid));
    const reverse = source ? undefined : inFrame.find((s) => covers(frames.domains(canonical), client.domid, s.domid));
    if (!source && !reverse) {
      outcome.failed.push({ pages: [client.ref], reason: UNSAFE });
      continue;
    }
    try {
      outcome.calls++;
      // Xen checks each handle against the page's frame now: members absorbed earlier carry the handle they
      // were nominated with, so the canonical frame's current handle is passed for them.
      if (source) {
        share({ ...source, handle: canonical }, client);
        frames.merged(canonical, client.handle);
      } else {
        // The client's frame survives: the canonical frame's gfns all move into it.
        share(client, { ...reverse!, handle: canonical });
        frames.merged(client.handle, canonical);
        canonical = client.handle;
      }
      absorbed.add(client.handle);
      inFrame.push(client);
    } catch (error) {
      outcome.failed.push({ pages: [client.ref], reason: errorText(error) });
    }
  }
  outcome.shared = members.filter((m) => inFrame.includes(m)).map((m) => m.ref);
  return outcome;
}
