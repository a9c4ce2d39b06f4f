/**
 * The figures of one repetition per strategy (what summary.csv averages over repetitions), from what the tick
 * loop kept of each strategy. Pure: tested from recorded numbers (repetition-metrics.test.ts).
 */
import { PAGE_SIZE } from '../vocabulary.ts';
import type { LedgerStats } from '../sharing/ledger.ts';
import type { MetricDeclarations } from '../sharing/types.ts';
import { XmeError } from '../util/errors.ts';
import { METRICS } from '../results/metrics.ts';
import { THREAD_CPU_METHOD } from '../util/thread-cpu.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import { SAVED_CLASSES, type SavedByClass } from '../introspection/saved-by-class.ts';

/** What the tick loop kept of one strategy over one repetition. */
export interface StrategyRecord {
  /** Names its rows. */
  label: string;
  /** The strategy's own name: 'semantic' is the reference of the CPU ratios. */
  name: string;
  /** Per tick, CPU ms of the scan, the CoW detection (from tick 1), the verification, the whole tick. */
  scanCpu: number[];
  cowCpu: number[];
  verifyCpu: number[];
  tickCpu: number[];
  /** Per tick, the tick split (TickCost): mechanism (with the modelled CoW), the modelled CoW alone (empty where not measured), instrument. */
  mechanismCpu: number[];
  cowModelCpu: number[];
  instrumentCpu: number[];
  /** Where sharing came from at the last tick that had classes (tick-attribution.ts); undefined where none did. */
  lastAttribution?: { savedByClass?: SavedByClass; contentSavedFound?: number; contentFramesSaved?: number };
  /** Per tick, the page classification billed to the strategy (strategies that read page classes only). */
  classifyCpu?: number[];
  classifyCheckCpu?: number[];
  refusedScans: number;
  /** The ledger's stats after the last tick. */
  stats: LedgerStats;
  cowMethodDescription: string;
  /** The last scan's figures; undefined if the strategy never scanned. */
  lastScanMetrics: Record<string, number> | undefined;
  /** The ledger's own figures after the last tick (Ledger.extraMetrics). */
  ledgerMetrics: Record<string, number>;
  /** The strategy's and the ledger's declared figures. */
  declared: MetricDeclarations;
  /** Set where CPU was measured otherwise than on the harness thread (ksmd's schedstat). */
  cpuMethod?: string;
}

export interface RepetitionFacts {
  guests: number;
  memoryMiB: number;
  repetition: number;
  /** Pages of all guests. */
  totalPages: number;
  /** Seconds between the first and the last tick. */
  spanS: number;
  /** Every guest's workload ops/s seen at any tick. */
  opsPerSecond: number[];
  /** The slowest guest's boot to ready, s. */
  bootS?: number;
  /** From the start of provisioning to the end of the first scored tick, s (not for replays). */
  firstResultS?: number;
  /** The harness process's peak private memory over the ticks, MiB (util/process-memory.ts). */
  harnessMemoryMiB?: number;
}

/** A mean, or undefined where nothing was measured (never NaN: summary.csv refuses non-finite values). */
function meanOf(values: number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

/** The ticks after the first: the first does one-off work (locating kernels, checking System.map). */
function steadyState(values: number[]): number[] {
  return values.length > 1 ? values.slice(1) : values;
}

const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);

export function repetitionMetrics(records: readonly StrategyRecord[], facts: RepetitionFacts): RepetitionMetrics[] {
  const spanMin = facts.spanS / 60;
  const guestGiB = (facts.totalPages * PAGE_SIZE) / 2 ** 30;
  const semantic = records.find((r) => r.label === 'semantic') ?? records.find((r) => r.name === 'semantic');
  const steadyScan = (record: StrategyRecord) => meanOf(steadyState(record.scanCpu));
  const steadyTick = (record: StrategyRecord) => meanOf(steadyState(record.tickCpu));
  const steadyMechanism = (record: StrategyRecord) => meanOf(steadyState(record.mechanismCpu));
  return records.map((record): RepetitionMetrics => {
    const { stats } = record;
    const metrics = record.lastScanMetrics ?? {};
    const values: RepetitionMetrics['values'] = {
      shared_pages: stats.sharedPages,
      frames_saved: stats.framesSaved,
      frames_saved_pct: (stats.framesSaved / facts.totalPages) * 100,
      host_frames_saved: stats.hostFramesSaved,
      frames_saved_zero: stats.savedWhere?.zero,
      frames_saved_within_guest: stats.savedWhere?.withinGuest,
      frames_saved_across_guests: stats.savedWhere?.acrossGuests,
      zero_pages_shared: stats.zeroPagesShared,
      // Free-frame reclaim, apart from frames_saved (sharing/ledger.ts "FREE PAGES RECLAIMED"), and both together.
      reclaimed_free_pages: stats.reclaimedFree,
      host_reclaimed_free_pages: stats.hostReclaimedFree,
      reclaim_faults: stats.reclaimFaults,
      frames_saved_and_reclaimed: stats.reclaimedFree !== undefined ? stats.framesSaved + stats.reclaimedFree : undefined,
      classify_cpu_ms: meanOf(steadyState(record.classifyCpu ?? [])),
      classify_check_cpu_ms: meanOf(steadyState(record.classifyCheckCpu ?? [])),
      cow_faults: stats.cowFaults,
      cow_copies: stats.cowCopies,
      cow_faults_per_min: spanMin > 0 ? stats.cowFaults / spanMin : undefined,
      scan_cpu_ms: steadyScan(record),
      first_scan_cpu_ms: record.scanCpu[0],
      first_scan_cpu_ms_per_guest: record.scanCpu[0] !== undefined ? record.scanCpu[0] / facts.guests : undefined,
      scan_cpu_ms_per_gib: ratio(steadyScan(record), guestGiB),
      cow_cpu_ms: meanOf(record.cowCpu),
      verify_cpu_ms: meanOf(steadyState(record.verifyCpu)),
      tick_cpu_ms: steadyTick(record),
      mechanism_cpu_ms: steadyMechanism(record),
      mechanism_cpu_ms_per_guest: ratio(steadyMechanism(record), facts.guests),
      cow_model_cpu_ms: meanOf(steadyState(record.cowModelCpu)),
      instrument_cpu_ms: meanOf(steadyState(record.instrumentCpu)),
      cpu_ms_per_s: record.tickCpu.length > 1 && facts.spanS > 0 ? steadyState(record.tickCpu).reduce((a, b) => a + b, 0) / facts.spanS : undefined,
      refused_scans: record.refusedScans,
      workload_ops_per_s: meanOf(facts.opsPerSecond),
      // Run-wide facts of the repetition, on every strategy's row (scale: cost against the guest count).
      boot_s: facts.bootS,
      first_result_s: facts.firstResultS,
      harness_memory_mib: facts.harnessMemoryMiB,
    };
    const attributed = record.lastAttribution;
    if (attributed?.savedByClass) for (const kind of SAVED_CLASSES) values[`saved_${kind}_frames`] = attributed.savedByClass[kind];
    if (attributed?.contentSavedFound !== undefined) {
      values.content_saved_found_frames = attributed.contentSavedFound;
      values.content_saved_found_pct = ratio(attributed.contentSavedFound * 100, attributed.contentFramesSaved);
    }
    if (metrics.kernel_code_pages) values.kernel_code_shareability_pct = ((metrics.kernel_code_identical_pages ?? 0) / metrics.kernel_code_pages) * 100;
    if (metrics.kernel_rodata_pages) values.kernel_rodata_shareability_pct = ((metrics.kernel_rodata_identical_pages ?? 0) / metrics.kernel_rodata_pages) * 100;
    if (semantic && semantic !== record) {
      values.scan_cpu_ratio_vs_semantic = ratio(steadyScan(record), steadyScan(semantic));
      values.tick_cpu_ratio_vs_semantic = ratio(steadyTick(record), steadyTick(semantic));
      values.mechanism_cpu_ratio_vs_semantic = ratio(steadyMechanism(record), steadyMechanism(semantic));
    }
    // Where no per-fault cost was measured, the mechanism's CPU lacks the CoW handling: its method says so.
    const cowModelled = record.cowModelCpu.length > 0;
    const withoutCow = cowModelled ? '' : '; CoW handling NOT included: no per-fault cost was measured (run.json cowFaultCost says why)';
    return {
      guests: facts.guests,
      memoryMiB: facts.memoryMiB,
      repetition: facts.repetition,
      strategy: record.label,
      values,
      // The CoW figures' method is the ledger's that counted them, not a guess from the backend's name.
      methods: {
        ...(record.cpuMethod
          ? {
              tick_cpu_ms: `whole cost per tick, mean over ticks after the first; ${record.cpuMethod}`,
              scan_cpu_ms: record.cpuMethod,
              cpu_ms_per_s: `Σ tick CPU after the first tick / seconds between first and last tick; ${record.cpuMethod}`,
              mechanism_cpu_ms: `the mechanism outside the harness: ${record.cpuMethod}; + the CoW handling modelled per fault (cow_model_cpu_ms), mean over ticks after the first${withoutCow}`,
              instrument_cpu_ms: `what observing the mechanism cost the harness thread (observer_cpu_ms in samples.csv) + the tick's residency snapshot and RAM copy, mean over ticks after the first; ${THREAD_CPU_METHOD}`,
            }
          : withoutCow
            ? { mechanism_cpu_ms: `${METRICS.mechanism_cpu_ms.method}${withoutCow}` }
            : {}),
        cow_faults: record.cowMethodDescription,
        cow_faults_per_min: `cow_faults / time between the first and the last tick; ${record.cowMethodDescription}`,
      },
      declared: declaredValues({ ...metrics, ...record.ledgerMetrics }, record.declared),
    };
  });
}

/** The declared figures measured at the last tick, with their unit and method; undeclared ones are left out. */
function declaredValues(measured: Record<string, number>, declared: MetricDeclarations): NonNullable<RepetitionMetrics['declared']> {
  const values: NonNullable<RepetitionMetrics['declared']> = {};
  for (const [name, value] of Object.entries(measured)) {
    const definition = declared[name];
    if (definition) values[name] = { value, unit: definition.unit, method: `${definition.method}; value at the last tick` };
  }
  return values;
}

/** Names in `measured` that were not declared: samples.csv keeps them, summary.csv cannot say their unit. */
export function undeclaredMetrics(measured: Record<string, number>, declared: MetricDeclarations): string[] {
  return Object.keys(measured).filter((name) => !(name in declared));
}

/**
 * A declared figure must not take the name of one of the runner's own (METRICS): summary.csv would then have
 * two rows of one name for one strategy. A programming error, so it stops the run before the first tick.
 */
export function checkDeclarations(owner: string, declared: MetricDeclarations): void {
  const clash = Object.keys(declared).find((name) => name in METRICS);
  if (clash)
    throw new XmeError(
      `${owner} declares a metric '${clash}', a name the runner already uses in summary.csv`,
      'rename the strategy’s or ledger’s figure (a bug in xme)',
    );
}
