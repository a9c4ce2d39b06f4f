/**
 * The one place that picks a ledger for a backend: a hypervisor that really merges pages (share + counters)
 * gets the enforcing ledger, whose figures are the hypervisor's own; any other backend gets the accounting
 * ledger. Callers read the mode and CoW method from the ledger, never from the backend's name.
 */
import type { Backend, Guest } from '../backends/types.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import { EnforcedLedger } from './enforced-ledger.ts';
import { AccountingLedger, type Ledger } from './ledger.ts';

export function ledgerFor(
  backend: Pick<Backend, 'enforcesSharing' | 'share' | 'counters' | 'reclaimFree' | 'sharedGfns'>,
  strategy: string,
  guests: readonly Guest[],
  hasher: PageHasher,
): Ledger {
  if (backend.enforcesSharing) {
    if (!backend.share || !backend.counters) throw new Error('a backend that enforces sharing must offer share() and counters()');
    return new EnforcedLedger(strategy, guests, hasher, {
      share: backend.share.bind(backend),
      counters: backend.counters.bind(backend),
      ...(backend.reclaimFree && backend.sharedGfns ? { reclaimFree: backend.reclaimFree.bind(backend), sharedGfns: backend.sharedGfns.bind(backend) } : {}),
    });
  }
  return new AccountingLedger(strategy, guests, hasher);
}
