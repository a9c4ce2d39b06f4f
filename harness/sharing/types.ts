/** What strategies propose and the ledger accounts: groups of guest pages with (claimed) equal bytes. */

export interface PageRef {
  /** Index of the guest in the run's guest list. */
  guest: number;
  /** Guest frame number (guest-physical address / 4096). */
  gfn: number;
}

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
