/**
 * The strategy seam: a strategy looks at guest memory and proposes groups of pages to share. It never shares
 * anything itself — the ledger verifies and accounts (QEMU) or the backend enforces (Xen).
 */
import type { PageRef } from '../harness/vocabulary.ts';
import type { Guest, GuestRamKind } from '../harness/backends/types.ts';
import type { Ledger } from '../harness/sharing/ledger.ts';
import type { GuestImage } from '../harness/images/manifest.ts';
import type { KernelInfo } from '../harness/introspection/kernel-info.ts';
import type { PageHasher } from '../harness/hashing/page-hasher.ts';
import type { MetricDeclarations, ScanCost, ShareGroup } from '../harness/sharing/types.ts';
import type { Residency } from '../harness/sharing/resident-pages.ts';
import type { ApplyResult, FreeProposal } from '../harness/sharing/ledger.ts';
import type { PageClasses } from '../harness/introspection/page-classes.ts';

/**
 * The guests' page classes at this tick (harness/introspection/page-classes.ts), taken by the tick loop once per
 * tick at the pause, for the strategies that ask for them (Strategy.readsPageClasses): one PageClasses per guest,
 * in the order of StrategyContext.guests — or, when any guest's classes were refused (a PageClassRefusal, a
 * kernel that does not fit the System.map, guests not paused), none, with the reason: the strategy then
 * proposes nothing (ScanResult.refused). cpuMs is what taking them cost (every strategy that reads them is
 * billed all of it: harness/experiment/tick-page-classes.ts); checkCpuMs, of it, the "guest changed" checks
 * (PageClasses.checkCpuMs, all guests), which the tick loop moves from the mechanism to the instrument.
 */
export type TickPageClasses =
  | { refused?: undefined; guests: readonly PageClasses[]; cpuMs: number; checkCpuMs?: number }
  | { refused: string; cpuMs: number; checkCpuMs?: number };

export interface StrategyContext {
  guests: readonly Guest[];
  image: GuestImage;
  /** System.map, layout and build version of the image's kernel (the System.map may be overridden). */
  kernel: KernelInfo;
  hasher: PageHasher;
  /**
   * Which pages the host backs, per guest, snapshot of this tick (harness/sharing/resident-pages.ts). A page
   * marked 0 is a hole: all zeros, and reading it would make the host allocate it — use pageBytes/backedRuns.
   */
  residency?: Residency;
  /** The guests' page classes at this tick; given only to strategies with readsPageClasses. */
  pageClasses?: TickPageClasses;
  /**
   * Whether all these pages are already one frame in the strategy's own ledger, byte-verified when they were
   * shared and unwritten since (the ledger's CoW detection ran this tick, before the scan): what a sharing
   * mechanism knows of its own shared pages, so it need not compare them again. Absent where the ledger cannot
   * say exactly at scan time (the enforced ledger re-reads only in apply; KSM's is the kernel's).
   */
  sharedOnOneFrame?(pages: readonly PageRef[]): boolean;
  /**
   * The same knowledge page by page: per guest, per page, the id of the frame it is on in shared state, 0 if
   * none (offered with sharedOnOneFrame). A view of the ledger's own columns, exact at scan time: read, never
   * written (one typed-array read per page, where a call per page cost more than the rest of the proposal).
   */
  sharedFrameIds?: readonly ArrayLike<number>[];
}

export interface ScanResult {
  groups: ShareGroup[];
  cost: ScanCost;
  /** Set when the strategy refused to propose anything, with the reason (e.g. System.map mismatch). */
  refused?: string;
  /** Strategy-specific figures, e.g. kernel_code_pages: each one declared in Strategy.declaredMetrics. */
  metrics: Record<string, number>;
  /** Things worth recording once in run.json (e.g. how the kernel was located). */
  notes: string[];
  /**
   * Free frames to count as reclaimed (semantic-free; harness/sharing/ledger.ts reclaimFree): the frames the page
   * classes found free at this pause, per guest — the whole set every tick — or `{ unknown }` when the strategy
   * cannot tell this tick (classes refused): the ledger then holds none reclaimed. Never byte-verified: a free
   * frame's stale bytes are not data (the one exception to "pages whose bytes differ are never shared").
   */
  freeFrames?: FreeProposal;
  /**
   * Where the scan also ran on worker threads (content's pass, harness/hashing/parallel-scan.ts): how many
   * threads worked, the harness thread included, and the workers' own thread CPU, which the harness thread's
   * clock does not see; the tick loop adds it to the scan's CPU (so to tick and mechanism CPU). Absent: one thread.
   */
  threads?: { count: number; workerCpuMs: number };
}

/** What a strategy with a lifecycle is given, and may tell the run (begin()). */
export interface StrategyLifecycle {
  /** The guests of this repetition, booted. */
  guests: readonly Guest[];
  /** Something worth recording once in run.json. */
  note: (text: string) => void;
  /** Something a person should see now and run.json should keep (e.g. settings restored from a killed run). */
  notice: (text: string) => void;
  /** Progress for a person. */
  say: (line: string) => void;
}

export interface Strategy {
  readonly name: string;
  /**
   * Where guest RAM must live for this strategy (default: any). A host-side merger (KSM) needs
   * 'anonymous-mergeable'; the runner then gives every guest of the run such RAM.
   */
  readonly guestRam?: GuestRamKind;
  /** false for strategies that never read guest memory (ksm, none): no per-tick copy of RAM is made for them. */
  readonly readsGuestMemory?: boolean;
  /**
   * true for strategies that share by what a page is (page cache, free): the tick loop then classifies every
   * paused guest once per tick (harness/experiment/tick-page-classes.ts) and gives the classes in
   * StrategyContext.pageClasses; the classification's CPU is billed to each such strategy's scan.
   */
  readonly readsPageClasses?: boolean;
  /**
   * A strategy whose sharing is done by a mechanism outside xme (the host kernel's KSM) brings the ledger that
   * observes that mechanism; every other strategy is verified and accounted (or enforced) by the harness's.
   */
  createLedger?(label: string, guests: readonly Guest[]): Ledger;
  /** Called once the guests are up, before the first tick of a repetition (e.g. turn KSM on). */
  begin?(lifecycle: StrategyLifecycle): void | Promise<void>;
  /** Called after the last tick of a repetition, also when it failed or was interrupted. Must not throw. */
  end?(): void | Promise<void>;
  /**
   * Every figure scan() may put in ScanResult.metrics, with its unit and method: they go to samples.csv's
   * strategy_metrics cell and, their value at the last tick, to summary.csv with that unit and method. On the
   * instance, not the factory, because options change them (semantic's rodata adds kernel_rodata_*).
   */
  readonly declaredMetrics: MetricDeclarations;
  describe(): string;
  scan(context: StrategyContext): Promise<ScanResult>;
  /**
   * Told what the ledger made of this tick's proposal (which pages it refused, bytes differing), right after
   * apply: figures that only the ledger's byte comparison can give (e.g. how often a key proposed pages whose
   * bytes differ), merged into this tick's metrics and declared in declaredMetrics like the scan's.
   */
  afterApply?(applied: ApplyResult): Record<string, number>;
}

export interface StrategyFactory {
  readonly name: string;
  readonly summary: string;
  /** Options a scenario may set, with what each means (shown by `xme strategies`). */
  readonly options: Record<string, string>;
  /** Validate options (an error names the option) and make a strategy. */
  create(options: Record<string, unknown>): Strategy;
}
