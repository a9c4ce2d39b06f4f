/**
 * What the tick loop measures, as typed records: per tick, for each strategy, one StrategySample (its
 * totals over all guests, its costs) and one GuestSample per guest. Writers (writers/) turn them into files;
 * nothing here knows about CSV. Run-wide facts (run id, scenario) are in the RunHeader (writers/result-writer.ts).
 */
import type { CounterCheck } from '../introspection/counter-check.ts';
import type { SavedByClass } from '../introspection/saved-by-class.ts';
import type { Ledger } from '../sharing/ledger.ts';

/** Where and when a sample was taken, and how the strategy's ledger measured. */
export interface SampleOrigin {
  /** Guests scored together (a scenario may sweep the count). */
  guests: number;
  memoryMiB: number;
  repetition: number;
  /** 0 for the first scoring of a repetition. */
  tick: number;
  /** Seconds from the repetition's first tick to this one (harness clock). */
  tS: number;
  /** The strategy's label: names its rows. */
  strategy: string;
  sharingMode: Ledger['mode'];
  /** Short name of the ledger's CoW method (content-reread, hypervisor). */
  cowMethod: string;
  cowCount: Ledger['cowCount'];
  /** 'ok', or 'refused: <reason>' when the strategy refused to propose anything this tick. */
  status: string;
}

/** What one tick of one strategy cost: CPU of the harness thread (util/thread-cpu.ts) and work done. */
export interface TickCost {
  /** How the CPU figures were measured (the harness thread's clock, or ksmd's schedstat). */
  cpuMethod: string;
  scanCpuMs: number;
  scanWallMs: number;
  /** The ledger's byte verification (and, enforced, the sharing calls). */
  verifyCpuMs: number;
  /** CoW detection; undefined at tick 0, where nothing was shared yet. */
  cowCpuMs: number | undefined;
  /** CoW detection + scan + verification; or, for sharing done outside the harness, that mechanism's CPU. */
  tickCpuMs: number;
  /** Where the mechanism is outside the harness (KSM): what observing it cost the harness thread. */
  observerCpuMs?: number;
  /** The harness's one copy of guest RAM this tick, where RAM is read by copying (not billed to any strategy). */
  memoryCopyCpuMs?: number;
  /**
   * What the sharing mechanism costs this tick, as a real system would pay it (sharing/ledger.ts, "COST:
   * MECHANISM AND INSTRUMENT"): the scan, the byte confirmation and the share calls (harness thread; where the
   * mechanism is outside the harness, its own CPU: ksmd), plus cowModelCpuMs where it is known.
   */
  mechanismCpuMs: number;
  /** The CoW handling, modelled: cowFaultsTick × the per-fault cost measured on this host (run.json cowFaultCost); undefined where not measured. */
  cowModelCpuMs: number | undefined;
  /**
   * What xme pays to watch the mechanism this tick: the strategy's own observation (CoW detection by re-read or
   * counter reads, the enforced ledger's re-read, KSM's observation) plus the tick's residency snapshot and RAM
   * copy (taken once per tick for every strategy, each strategy's row shows them). For a strategy scored on the
   * harness thread: mechanismCpuMs + instrumentCpuMs = tickCpuMs + cowModelCpuMs + residencyCpuMs + memoryCopyCpuMs
   * + attributionCpuMs.
   */
  instrumentCpuMs: number;
  /** The tick's residency snapshot (which pages the host backs), once per tick for every strategy; undefined where no guest reports it. */
  residencyCpuMs?: number;
  /**
   * The tick's page classification (experiment/tick-page-classes.ts), for strategies that read page classes only:
   * done once per tick, billed whole to each such strategy (it is in its scanCpuMs, tickCpuMs and mechanismCpuMs).
   */
  classifyCpuMs?: number;
  /**
   * Of classifyCpuMs, the "guest changed" checks (PageClasses.checkCpuMs): xme's proof that its pause held, moved
   * from mechanismCpuMs to instrumentCpuMs (a real system's own pause needs no proof).
   */
  classifyCheckCpuMs?: number;
  /**
   * Where sharing comes from (experiment/tick-attribution.ts): attributing every strategy's frames saved to page
   * classes and checking the classes against the kernel's counters, plus the classification itself when it was
   * made for attribution only; once per tick, the instrument's (in instrumentCpuMs of every strategy's row).
   */
  attributionCpuMs?: number;
  pagesRead: number;
  bytesHashed: number;
  /** By the strategy and by the ledger's verification. */
  bytesCompared: number;
}

/** A strategy's totals over all guests at one tick. */
export interface StrategySample extends SampleOrigin {
  scope: 'all';
  /** Pages of all guests. */
  guestPages: number;
  sharedPages: number;
  framesSaved: number;
  /** Undefined where the backend cannot tell which pages the host backs. */
  hostFramesSaved: number | undefined;
  /** framesSaved by where the sharing lies (sharing/ledger.ts SavedWhere); undefined where the ledger cannot tell. */
  framesSavedZero: number | undefined;
  framesSavedWithinGuest: number | undefined;
  framesSavedAcrossGuests: number | undefined;
  /** Undefined unless every guest reported its resident pages. */
  hostResidentPages: number | undefined;
  zeroPagesShared: number;
  /** CoW faults detected at this tick (since the previous one). */
  cowFaultsTick: number;
  cowFaultsTotal: number;
  cowCopiesTotal: number;
  /**
   * Free frames in reclaimed state (sharing/ledger.ts, "FREE PAGES RECLAIMED"): apart from sharedPages and
   * framesSaved, never byte-verified. Absent where the ledger reclaims nothing; hostReclaimedFreePages counts
   * only frames the host backs (undefined where unknown).
   */
  reclaimedFreePages?: number;
  hostReclaimedFreePages?: number | undefined;
  /** Reclaimed frames the classes of this tick no longer found free (each left reclaimed state), and since the start. */
  reclaimFaultsTick?: number;
  reclaimFaultsTotal?: number;
  /** framesSaved by the page class of each saved page at this tick (introspection/saved-by-class.ts); absent without classes. */
  savedByClass?: SavedByClass;
  /** framesSaved the classes cannot place (KSM's zero pages: no guest frame backs them). */
  savedUnlocated?: number | undefined;
  /** Of the content strategy's saved pages at this tick, those this strategy's ledger also saves or reclaims. */
  contentSavedFound?: number;
  cost: TickCost;
  /** Pages the ledger refused this tick (bytes differ, malformed groups). */
  refusedPages: number;
  /** The strategy's figures from this scan and the ledger's own (Strategy/Ledger.declaredMetrics). */
  metrics: Record<string, number>;
}

/** One guest's share of a strategy's figures at one tick. */
export interface GuestSample extends SampleOrigin {
  scope: 'guest';
  /** The guest's id (g0, g1, …). */
  guest: string;
  guestPages: number;
  sharedPages: number;
  hostResidentPages: number | undefined;
  cowFaultsTick: number;
  cowFaultsTotal: number;
  /** Workload ops/s since the previous tick, from the guest's progress lines; undefined when unknown. */
  workloadOpsPerS: number | undefined;
  /** The tick's page classes of this guest beside its kernel's own counters (introspection/counter-check.ts); absent without classes. */
  counters?: CounterCheck;
}

export type TickSample = StrategySample | GuestSample;
