/**
 * SYNTHETIC RESULTS FOLDERS for the report's tests: samples.csv, summary.csv and run.json written by the real
 * writers (writers/) from made-up TickSamples and RepetitionMetrics, starting from the recorded run's header
 * (recorded-samples.ts). The numbers follow simple rules so a test can say how many series and points each
 * figure must have; nothing boots, nothing is measured.
 */
import { emptySavedByClass } from '../introspection/saved-by-class.ts';
import { THREAD_CPU_METHOD } from '../util/thread-cpu.ts';
import fs from 'node:fs';
import path from 'node:path';
import type { StrategySpec } from '../scenario/scenario.ts';
import { summaryRows } from '../experiment/summary.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import type { TickSample } from '../results/tick-sample.ts';
import type { ResultWriter } from '../results/result-writer.ts';
import type { RunEnd, RunHeader } from '../results/run.ts';
import { runRecord, writeRunRecord } from '../results/run-record.ts';
import { SamplesCsvWriter } from '../results/writers/samples-csv.ts';
import { SummaryCsvWriter } from '../results/writers/summary-csv.ts';
import { recordedHeader } from './recorded-samples.ts';

export interface SyntheticRunSpec {
  runId: string;
  scenario?: string;
  /** Strategy labels; one starting with 'semantic' is a semantic strategy (default: semantic, content). */
  strategies?: string[];
  memoryMiB?: number[];
  repetitions?: number;
  /** Ticks per repetition (default 4). */
  ticks?: number;
  /** Guests per repetition (default 2); a list sweeps the count, with the scale figures (boot_s, …) per count. */
  guests?: number | number[];
  kaslr?: boolean;
  /** The scenario's workload (default memchurn). */
  workload?: string;
  /** content-reread (default: lower bound) or hypervisor (upper bound). */
  cowMethod?: 'content-reread' | 'hypervisor';
  /** Whether the backend reports host-resident pages (host_frames_saved); default true. */
  hostFrames?: boolean;
  /** Whether semantic strategies measure kernel code (and, with a '+rodata' label, rodata) shareability; default true. */
  kernel?: boolean;
  /** workload_ops_per_s of every repetition (default 1000; 0: a workload that reports none). */
  opsPerS?: number;
  status?: RunEnd['status'];
  /** Leave out these files afterwards (to model a killed or older run). */
  without?: ('samples.csv' | 'summary.csv')[];
}

const isSemantic = (label: string) => label.startsWith('semantic');

/** Writes <root>/<runId>/ and returns the folder. */
export function writeSyntheticRun(root: string, spec: SyntheticRunSpec): string {
  const strategies = spec.strategies ?? ['semantic', 'content'];
  const memories = spec.memoryMiB ?? [256];
  const repetitions = spec.repetitions ?? 1;
  const ticks = spec.ticks ?? 4;
  const counts = Array.isArray(spec.guests) ? spec.guests : [spec.guests ?? 2];
  const sweepsGuests = counts.length > 1;
  const cowMethod = spec.cowMethod ?? 'content-reread';
  const cowCount = cowMethod === 'hypervisor' ? 'upper bound' : 'lower bound';
  const hostFrames = spec.hostFrames ?? true;
  const kernel = spec.kernel ?? true;
  const opsPerS = spec.opsPerS ?? 1000;
  const dir = path.join(root, spec.runId);
  fs.mkdirSync(dir, { recursive: true });

  const recorded = recordedHeader(dir);
  const header: RunHeader = {
    ...recorded,
    runId: spec.runId,
    scenario: {
      ...recorded.scenario,
      name: spec.scenario ?? 'synthetic',
      guests: counts,
      memoryMiB: memories,
      kaslr: spec.kaslr ?? false,
      workload: { name: (spec.workload ?? 'memchurn') as RunHeader['scenario']['workload']['name'], params: {} },
      repetitions,
      strategies: strategies.map(
        (label): StrategySpec => ({ name: isSemantic(label) ? 'semantic' : 'content', label, options: label.includes('rodata') ? { rodata: true } : {} }),
      ),
    },
  };
  const writers: ResultWriter[] = [new SamplesCsvWriter(), new SummaryCsvWriter()];
  for (const writer of writers) writer.begin?.(header);

  const metrics: RepetitionMetrics[] = [];
  for (const guests of counts)
    for (const memoryMiB of memories) {
      const guestPages = (memoryMiB * 256) | 0;
      for (let repetition = 1; repetition <= repetitions; repetition++) {
        for (let tick = 0; tick < ticks; tick++) {
          strategies.forEach((strategy, s) => {
            const shared = (isSemantic(strategy) ? 1000 : 20_000) * (1 + s) + tick * 10 + repetition;
            const origin = {
              guests,
              memoryMiB,
              repetition,
              tick,
              tS: tick * 2.5,
              strategy,
              sharingMode: 'accounted' as const,
              cowMethod,
              cowCount: cowCount as 'upper bound' | 'lower bound',
              status: 'ok',
            };
            const total: TickSample = {
              ...origin,
              scope: 'all',
              guestPages: guestPages * guests,
              sharedPages: shared,
              framesSaved: shared / 2,
              hostFramesSaved: hostFrames ? shared / 4 : undefined,
              hostResidentPages: hostFrames ? guestPages : undefined,
              zeroPagesShared: 0,
              // The split adds up to framesSaved: no zero frames, a quarter within guests, the rest across.
              framesSavedZero: 0,
              framesSavedWithinGuest: shared / 8,
              framesSavedAcrossGuests: shared / 2 - shared / 8,
              // Where sharing comes from, adding up to framesSaved: half page cache, a quarter free, a quarter kernel text.
              savedByClass: { ...emptySavedByClass(), pagecache: shared / 4, free: shared / 8, kernel_text: shared / 8 },
              savedUnlocated: 0,
              ...(strategy === 'content' ? {} : { contentSavedFound: shared / 8 }),
              cowFaultsTick: tick > 0 ? s + 1 : 0,
              cowFaultsTotal: tick * (s + 1),
              cowCopiesTotal: tick * (s + 1),
              cost: {
                cpuMethod: THREAD_CPU_METHOD,
                scanCpuMs: 1,
                scanWallMs: 1,
                verifyCpuMs: 1,
                cowCpuMs: tick > 0 ? 1 : undefined,
                tickCpuMs: 3,
                // The split adds up: mechanism (scan + verification + CoW model at 4 µs a fault) + instrument (CoW detection) = tick + CoW model.
                mechanismCpuMs: 2 + (tick > 0 ? s + 1 : 0) * 0.004,
                cowModelCpuMs: (tick > 0 ? s + 1 : 0) * 0.004,
                instrumentCpuMs: tick > 0 ? 1 : 0,
                pagesRead: 1,
                bytesHashed: 4096,
                bytesCompared: 4096,
              },
              refusedPages: 0,
              metrics: {},
            };
            const perGuest: TickSample[] = Array.from({ length: guests }, (_, g) => ({
              ...origin,
              scope: 'guest',
              guest: `g${g}`,
              guestPages,
              sharedPages: shared / guests,
              hostResidentPages: undefined,
              cowFaultsTick: 0,
              cowFaultsTotal: 0,
              workloadOpsPerS: opsPerS,
            }));
            for (const sample of [total, ...perGuest]) for (const writer of writers) writer.sample?.(sample);
          });
        }
        strategies.forEach((strategy, s) => {
          const scan = (isSemantic(strategy) ? 4 : 120) * (memoryMiB / 256) * (1 + 0.05 * repetition);
          const values: RepetitionMetrics['values'] = {
            shared_pages: 1000 * (1 + s),
            frames_saved: 500 * (1 + s),
            // The split adds up to frames_saved: 100 zero, a fifth of the rest within guests, the remainder across.
            frames_saved_zero: 100,
            frames_saved_within_guest: (500 * (1 + s) - 100) / 5,
            frames_saved_across_guests: ((500 * (1 + s) - 100) * 4) / 5,
            cow_faults: (ticks - 1) * (s + 1),
            scan_cpu_ms: scan,
            tick_cpu_ms: scan * 2,
            // Mechanism + instrument = tick + the CoW model (a small part, so a figure can show it).
            mechanism_cpu_ms: scan * 1.25 + 0.01 * (s + 1),
            cow_model_cpu_ms: 0.01 * (s + 1),
            instrument_cpu_ms: scan * 0.75,
            workload_ops_per_s: opsPerS === 0 ? 0 : opsPerS + repetition,
          };
          if (hostFrames) values.host_frames_saved = 250 * (1 + s);
          if (sweepsGuests) {
            // Semantic's first scan and every strategy's mechanism grow with the guests; the harness's memory too.
            values.mechanism_cpu_ms_per_guest = values.mechanism_cpu_ms! / guests;
            values.first_scan_cpu_ms_per_guest = isSemantic(strategy) ? 40 + repetition : 200 + repetition;
            values.boot_s = 5 + guests * 1.5 + repetition / 10;
            values.first_result_s = 8 + guests * 1.6 + repetition / 10;
            values.harness_memory_mib = 150 + guests * 4 + repetition;
          }
          if (kernel && isSemantic(strategy)) {
            values.kernel_code_shareability_pct = spec.kaslr ? 28.6 + repetition / 10 : 100;
            if (strategy.includes('rodata')) values.kernel_rodata_shareability_pct = spec.kaslr ? 20 + repetition / 10 : 99.7;
          }
          metrics.push({ guests, memoryMiB, repetition, strategy, values });
        });
      }
    }
  const end: RunEnd = {
    status: spec.status ?? 'completed',
    endedAt: '2026-11-27T13:45:00.000Z',
    backend: { name: 'fake', version: 'fake 1', accelerator: 'none', acceleratorReason: 'synthetic results', cpuModel: 'none' },
    sharingModes: ['accounted'],
    cowMethods: [
      cowMethod === 'hypervisor'
        ? 'hypervisor: drops of each domain’s shr_pages (upper bound: Xen also unshares on its own reads)'
        : 'content-reread: each tick every page in shared state is re-read (lower bound)',
    ],
    repetitions: metrics,
    summary: summaryRows(header.scenario, metrics),
    overhead: undefined,
    warnings: [],
    notes: [],
  };
  for (const writer of writers) writer.end?.(end);
  writeRunRecord(dir, runRecord(header, end));
  for (const file of spec.without ?? []) fs.rmSync(path.join(dir, file));
  return dir;
}
