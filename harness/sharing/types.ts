/** What strategies propose and the ledger accounts: groups of guest pages with (claimed) equal bytes. */

import type { PageRef } from '../vocabulary.ts';

export interface ShareGroup {
  pages: PageRef[];
  /** All-zero pages are counted apart: content-based sharing of zero pages is cheap and says little. */
  zero?: boolean;
}

export interface ScanCost {
  pagesRead: number;
  bytesHashed: number;
  bytesCompared: number;
}

/**
 * How a figure is read: its unit and how it was measured. Every figure in summary.csv carries both, so a
 * number read out of context still says what it is. Here, not in experiment/ or results/, because strategies and
 * ledgers declare the figures they add (strategies/types.ts, ledger.ts) and must not import the runner's folders.
 */
export interface MetricDefinition {
  unit: string;
  method: string;
}

/** Figures a strategy or a ledger adds to the results, by name (a name carries its unit, e.g. hypercalls_total). */
export type MetricDeclarations = Readonly<Record<string, MetricDefinition>>;
