/**
 * samples.csv: one row per tick × strategy × guest ("all" = the strategy's totals over all guests). The
 * schema below is the file's one description: the writer (writers/samples-csv.ts) fills it from TickSamples
 * through sampleRow(), the report reads it back through readSamples().
 */
import { THREAD_CPU_METHOD } from '../util/thread-cpu.ts';
import { numberColumn, readCsv, requiredNumber, requiredText, textColumn, type CsvValue, type RowOf } from './csv.ts';
import type { StrategySample, TickSample } from './tick-sample.ts';
import { COUNTER_CHECKS, type CounterCheck } from '../introspection/counter-check.ts';
import { SAVED_CLASSES } from '../introspection/saved-by-class.ts';

export const SAMPLE_SCHEMA = {
  run_id: textColumn,
  scenario: textColumn,
  repetition: requiredNumber,
  /** Guests scored together (absent in files written before the column existed). */
  guests: numberColumn,
  memory_mib: requiredNumber,
  tick: requiredNumber,
  t_s: requiredNumber,
  strategy: requiredText,
  guest: requiredText,
  sharing_mode: textColumn,
  guest_pages: numberColumn,
  shared_pages: numberColumn,
  frames_saved: numberColumn,
  host_frames_saved: numberColumn,
  frames_saved_zero: numberColumn,
  frames_saved_within_guest: numberColumn,
  frames_saved_across_guests: numberColumn,
  host_resident_pages: numberColumn,
  zero_pages_shared: numberColumn,
  cow_faults_tick: numberColumn,
  cow_faults_total: numberColumn,
  cow_copies_total: numberColumn,
  reclaimed_free_pages: numberColumn,
  host_reclaimed_free_pages: numberColumn,
  reclaim_faults_tick: numberColumn,
  reclaim_faults_total: numberColumn,
  // Where sharing comes from (scenarios/README.md, "Where sharing comes from"): frames_saved by page class.
  saved_free_frames: numberColumn,
  saved_pagecache_frames: numberColumn,
  saved_shmem_frames: numberColumn,
  saved_anon_frames: numberColumn,
  saved_slab_frames: numberColumn,
  saved_pagetable_frames: numberColumn,
  saved_kernel_text_frames: numberColumn,
  saved_kernel_rodata_frames: numberColumn,
  saved_kernel_data_frames: numberColumn,
  saved_module_text_frames: numberColumn,
  saved_other_frames: numberColumn,
  saved_unlocated_frames: numberColumn,
  content_saved_found_frames: numberColumn,
  cow_method: textColumn,
  cow_count: textColumn,
  scan_cpu_ms: numberColumn,
  scan_wall_ms: numberColumn,
  verify_cpu_ms: numberColumn,
  cow_cpu_ms: numberColumn,
  tick_cpu_ms: numberColumn,
  cpu_method: textColumn,
  observer_cpu_ms: numberColumn,
  memory_copy_cpu_ms: numberColumn,
  residency_cpu_ms: numberColumn,
  mechanism_cpu_ms: numberColumn,
  cow_model_cpu_ms: numberColumn,
  instrument_cpu_ms: numberColumn,
  classify_cpu_ms: numberColumn,
  classify_check_cpu_ms: numberColumn,
  attribution_cpu_ms: numberColumn,
  pages_read: numberColumn,
  bytes_hashed: numberColumn,
  bytes_compared: numberColumn,
  refused_pages: numberColumn,
  kernel_code_pages: numberColumn,
  kernel_code_identical_pages: numberColumn,
  kernel_rodata_pages: numberColumn,
  kernel_rodata_identical_pages: numberColumn,
  strategy_metrics: textColumn,
  workload_ops_per_s: numberColumn,
  // Guest rows: the tick's page classes beside the kernel's own counters (introspection/counter-check.ts).
  classes_free_pages: numberColumn,
  kernel_free_pages: numberColumn,
  classes_file_pages: numberColumn,
  kernel_file_pages: numberColumn,
  classes_anon_pages: numberColumn,
  kernel_anon_pages: numberColumn,
  classes_slab_pages: numberColumn,
  kernel_slab_pages: numberColumn,
  classes_pagetable_pages: numberColumn,
  kernel_pagetable_pages: numberColumn,
  classes_counters_agree: numberColumn,
  status: requiredText,
} as const;

export type SampleColumn = keyof typeof SAMPLE_SCHEMA;
export const SAMPLE_COLUMNS = Object.keys(SAMPLE_SCHEMA) as SampleColumn[];
/** A row of samples.csv as read back. */
export type SampleRow = RowOf<typeof SAMPLE_SCHEMA>;
/** A row of samples.csv as written (every cell may be left empty). */
export type SampleCells = Partial<Record<SampleColumn, CsvValue>>;

/** How every *_cpu_ms figure is measured (the same for all strategies; strategies run in rotated order). */
export const CPU_METHOD = `${THREAD_CPU_METHOD}; strategy order rotated every tick`;

/** The samples.csv row of a sample; run-wide cells (run id, scenario) come from the run's header. */
export function sampleRow(run: { runId: string; scenario: { name: string } }, sample: TickSample): SampleCells {
  const common: SampleCells = {
    run_id: run.runId,
    scenario: run.scenario.name,
    repetition: sample.repetition,
    guests: sample.guests,
    memory_mib: sample.memoryMiB,
    tick: sample.tick,
    t_s: sample.tS,
    strategy: sample.strategy,
    sharing_mode: sample.sharingMode,
    cow_method: sample.cowMethod,
    // content-reread cannot see a write that stores the bytes already there: its count is a lower bound.
    cow_count: sample.cowCount,
  };
  if (sample.scope === 'guest') {
    return {
      ...common,
      guest: sample.guest,
      guest_pages: sample.guestPages,
      shared_pages: sample.sharedPages,
      host_resident_pages: sample.hostResidentPages,
      cow_faults_tick: sample.cowFaultsTick,
      cow_faults_total: sample.cowFaultsTotal,
      workload_ops_per_s: sample.workloadOpsPerS,
      ...counterCells(sample.counters),
      status: sample.status,
    };
  }
  const { cost, metrics } = sample;
  return {
    ...common,
    guest: 'all',
    guest_pages: sample.guestPages,
    shared_pages: sample.sharedPages,
    frames_saved: sample.framesSaved,
    host_frames_saved: sample.hostFramesSaved,
    frames_saved_zero: sample.framesSavedZero,
    frames_saved_within_guest: sample.framesSavedWithinGuest,
    frames_saved_across_guests: sample.framesSavedAcrossGuests,
    host_resident_pages: sample.hostResidentPages,
    zero_pages_shared: sample.zeroPagesShared,
    cow_faults_tick: sample.cowFaultsTick,
    cow_faults_total: sample.cowFaultsTotal,
    cow_copies_total: sample.cowCopiesTotal,
    // Free frames reclaimed (semantic-free), apart from the shared figures: sharing/ledger.ts "FREE PAGES RECLAIMED".
    reclaimed_free_pages: sample.reclaimedFreePages,
    host_reclaimed_free_pages: sample.hostReclaimedFreePages,
    reclaim_faults_tick: sample.reclaimFaultsTick,
    reclaim_faults_total: sample.reclaimFaultsTotal,
    ...savedCells(sample),
    scan_cpu_ms: cost.scanCpuMs,
    scan_wall_ms: cost.scanWallMs,
    verify_cpu_ms: cost.verifyCpuMs,
    cow_cpu_ms: cost.cowCpuMs,
    tick_cpu_ms: cost.tickCpuMs,
    // The harness thread's clock, or the mechanism's own (ksmd) where sharing is done outside the harness.
    cpu_method: cost.cpuMethod === THREAD_CPU_METHOD ? CPU_METHOD : cost.cpuMethod,
    observer_cpu_ms: cost.observerCpuMs,
    memory_copy_cpu_ms: cost.memoryCopyCpuMs,
    // The tick split (tick-sample.ts TickCost; metrics.ts says how each part is measured).
    residency_cpu_ms: cost.residencyCpuMs,
    mechanism_cpu_ms: cost.mechanismCpuMs,
    cow_model_cpu_ms: cost.cowModelCpuMs,
    instrument_cpu_ms: cost.instrumentCpuMs,
    classify_cpu_ms: cost.classifyCpuMs,
    classify_check_cpu_ms: cost.classifyCheckCpuMs,
    attribution_cpu_ms: cost.attributionCpuMs,
    pages_read: cost.pagesRead,
    bytes_hashed: cost.bytesHashed,
    bytes_compared: cost.bytesCompared,
    refused_pages: sample.refusedPages,
    // The semantic strategy's figures have columns of their own (the thesis's headline numbers)…
    kernel_code_pages: metrics.kernel_code_pages,
    kernel_code_identical_pages: metrics.kernel_code_identical_pages,
    kernel_rodata_pages: metrics.kernel_rodata_pages,
    kernel_rodata_identical_pages: metrics.kernel_rodata_identical_pages,
    // …and every strategy's and ledger's figures are in one cell, whatever the strategy.
    strategy_metrics: metricsCell(metrics),
    status: sample.status,
  };
}

/** frames_saved by page class (introspection/saved-by-class.ts) and the part of content's savings found. */
function savedCells(sample: StrategySample): SampleCells {
  const byClass = sample.savedByClass;
  const cells: SampleCells = { content_saved_found_frames: sample.contentSavedFound };
  if (!byClass) return cells;
  for (const name of SAVED_CLASSES) cells[`saved_${name}_frames` as SampleColumn] = byClass[name];
  return { ...cells, saved_unlocated_frames: sample.savedUnlocated };
}

/** A guest row's classes beside its kernel's counters; classes_counters_agree 1 when every pair is within tolerance. */
function counterCells(check: CounterCheck | undefined): SampleCells {
  if (!check) return {};
  const cells: SampleCells = { classes_counters_agree: COUNTER_CHECKS.every((name) => check[name].agrees) ? 1 : 0 };
  for (const name of COUNTER_CHECKS) {
    cells[`classes_${name}_pages` as SampleColumn] = check[name].classified;
    cells[`kernel_${name}_pages` as SampleColumn] = check[name].kernel;
  }
  return cells;
}

/** Strategy- and ledger-specific figures (names carry their unit) as one `name=value;…` cell. */
export function metricsCell(metrics: Record<string, number>): string | undefined {
  const entries = Object.entries(metrics).filter(([, value]) => Number.isFinite(value));
  return entries.length ? entries.map(([name, value]) => `${name}=${value}`).join(';') : undefined;
}

export const RESULTS_HINT = 'give results folders written by xme run (results/<run-id>/, with run.json, samples.csv, summary.csv)';

/** The rows of a samples.csv; `guest` 'all' keeps only the strategies' totals. */
export function readSamples(file: string, options: { guest?: string } = {}): SampleRow[] {
  const { guest } = options;
  return readCsv(file, SAMPLE_SCHEMA, {
    kind: 'a samples.csv',
    hint: RESULTS_HINT,
    ...(guest !== undefined ? { where: (cell: (column: string) => string) => cell('guest') === guest } : {}),
  });
}
