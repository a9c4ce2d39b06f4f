/**
 * samples.csv: one row per tick × strategy × guest ("all" = the strategy's totals), appended as each sample
 * is measured (an interrupted run keeps every complete row). Columns: SAMPLE_COLUMNS (samples.ts).
 */
import path from 'node:path';
import { CsvAppender, type CsvValue } from '../csv-writer.ts';
import { CPU_METHOD, SAMPLE_COLUMNS, type SampleColumn } from '../samples.ts';
import { THREAD_CPU_METHOD } from '../../util/thread-cpu.ts';
import type { TickSample } from '../tick-sample.ts';
import type { ResultWriter, RunHeader } from './result-writer.ts';

export type SampleRow = Partial<Record<SampleColumn, CsvValue>>;

/** The samples.csv row of a sample; run-wide cells (run id, scenario) come from the run's header. */
export function sampleRow(run: { runId: string; scenario: { name: string } }, sample: TickSample): SampleRow {
  const common: SampleRow = {
    run_id: run.runId,
    scenario: run.scenario.name,
    repetition: sample.repetition,
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
    host_resident_pages: sample.hostResidentPages,
    zero_pages_shared: sample.zeroPagesShared,
    cow_faults_tick: sample.cowFaultsTick,
    cow_faults_total: sample.cowFaultsTotal,
    cow_copies_total: sample.cowCopiesTotal,
    scan_cpu_ms: cost.scanCpuMs,
    scan_wall_ms: cost.scanWallMs,
    verify_cpu_ms: cost.verifyCpuMs,
    cow_cpu_ms: cost.cowCpuMs,
    tick_cpu_ms: cost.tickCpuMs,
    // The harness thread's clock, or the mechanism's own (ksmd) where sharing is done outside the harness.
    cpu_method: cost.cpuMethod === THREAD_CPU_METHOD ? CPU_METHOD : cost.cpuMethod,
    observer_cpu_ms: cost.observerCpuMs,
    memory_copy_cpu_ms: cost.memoryCopyCpuMs,
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

/** Strategy- and ledger-specific figures (names carry their unit) as one `name=value;…` cell. */
export function metricsCell(metrics: Record<string, number>): string | undefined {
  const entries = Object.entries(metrics).filter(([, value]) => Number.isFinite(value));
  return entries.length ? entries.map(([name, value]) => `${name}=${value}`).join(';') : undefined;
}

export class SamplesCsvWriter implements ResultWriter {
  private csv: CsvAppender<SampleColumn> | undefined;
  private run: RunHeader | undefined;

  begin(run: RunHeader): void {
    this.run = run;
    this.csv = new CsvAppender(path.join(run.dir, 'samples.csv'), SAMPLE_COLUMNS);
  }

  sample(sample: TickSample): void {
    if (!this.csv || !this.run) throw new Error('SamplesCsvWriter: sample() before begin()');
    this.csv.append(sampleRow(this.run, sample));
  }

  end(): void {
    this.csv?.close();
  }
}
