/**
 * Runs a scenario: for each memory size and repetition, boot identical guests, then every tick score every
 * strategy on the same (paused) guests — CoW detection on what was shared at the previous tick, a scan, the
 * ledger's byte-verified apply — and append the rows to samples.csv. At the end, summary.csv and run.json.
 * Rows are written as they come; on Ctrl-C the guests are stopped and run.json says "interrupted".
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage, XmeError } from '../util/errors.ts';
import { onCleanup, terminationRequested } from '../util/cleanup.ts';
import { PAGE_SIZE, type Guest } from '../backends/types.ts';
import { checkBackendAvailable, createBackend } from '../backends/registry.ts';
import type { Backend, BackendInfo } from '../backends/types.ts';
import type { AcceleratorRequest } from '../backends/qemu/accelerator.ts';
import { buildImage } from '../images/build.ts';
import type { GuestImage } from '../images/manifest.ts';
import { kernelInfo, type KernelInfo } from '../introspection/kernel-info.ts';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { COW_DEFINITION, type Ledger } from '../sharing/ledger.ts';
import { ledgerFor } from '../sharing/ledger-for-backend.ts';
import { measureThreadCpu } from '../util/thread-cpu.ts';
import { createStrategy } from '../../strategies/registry.ts';
import type { ScanResult, Strategy } from '../../strategies/types.ts';
import type { Scenario } from './scenario.ts';
import { CsvAppender } from './csv-writer.ts';
import { CPU_METHOD, SAMPLE_COLUMNS, SUMMARY_COLUMNS } from './samples.ts';
import { harnessInfo, hostInfo, writeJsonAtomically } from './run-record.ts';
import { markAbandonedRuns, ownerIdentity } from './abandoned-runs.ts';
import { summaryRows, type RepetitionMetrics, type SummaryRow } from './summary.ts';

const SHARING_MODES: Record<Ledger['mode'], string> = {
  enforced: 'enforced (the hypervisor backs byte-verified pages by one frame; counts are its own)',
  accounted: 'accounted (the backend does not merge pages; the ledger accounts what each strategy would share)',
};

export interface RunOptions {
  scenario: Scenario;
  accelerator?: AcceleratorRequest;
  /** Parent folder of results/<run-id>/. */
  resultsRoot: string;
  /** Progress for a person (one line at a time). */
  onProgress?: (line: string) => void;
  argv?: string[];
}

/** 'abandoned' is set by a later process that found the owner of a 'running' run gone (abandoned-runs.ts). */
export type RunStatus = 'running' | 'completed' | 'interrupted' | 'failed' | 'abandoned';

export interface RunOutcome {
  runId: string;
  dir: string;
  status: RunStatus;
  summary: SummaryRow[];
  repetitions: RepetitionMetrics[];
  warnings: string[];
}

function newRunId(root: string, scenario: string): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let id = `${stamp}-${scenario}`;
  for (let i = 2; fs.existsSync(path.join(root, id)); i++) id = `${stamp}-${scenario}-${i}`;
  return id;
}

async function sleepUntil(deadline: number): Promise<void> {
  while (Date.now() < deadline && !terminationRequested()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, deadline - Date.now())));
  }
}

/** Workload ops/s of a guest since the progress line seen at the previous tick (guest time). */
class ThroughputMeter {
  private lastIndex = new Map<Guest, number>();

  sample(guest: Guest): number | undefined {
    const progress = guest.progress();
    const previous = this.lastIndex.get(guest);
    this.lastIndex.set(guest, progress.length - 1);
    if (previous === undefined || previous < 0 || progress.length - 1 <= previous) return undefined;
    const from = progress[previous]!;
    const to = progress.at(-1)!;
    return to.tMs > from.tMs ? ((to.ops - from.ops) * 1000) / (to.tMs - from.tMs) : undefined;
  }
}

interface StrategyTrack {
  spec: Scenario['strategies'][number];
  /** The name of this strategy's rows: the scenario's label, else the strategy's name. */
  label: string;
  strategy: Strategy;
  ledger: Ledger;
  scanCpu: number[];
  cowCpu: number[];
  verifyCpu: number[];
  /** CoW detection + scan + verification/apply of one tick: what the strategy costs per tick. */
  tickCpu: number[];
  refusedScans: number;
  lastScan?: ScanResult;
}

export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { scenario } = options;
  const say = options.onProgress ?? (() => undefined);
  const warnings: string[] = [];
  const notes = new Set<string>();
  const ledgerModes = new Set<Ledger['mode']>();
  const cowMethods = new Set<string>();

  await checkBackendAvailable(scenario.backend);
  say(`image '${scenario.image}': checking (built from Debian packages on first use)`);
  const image: GuestImage = (await buildImage(scenario.image, { onStep: (m) => say(`  ${m}`) })).image;
  const kernel: KernelInfo = kernelInfo(image, scenario.systemMap);
  const hasher: PageHasher = await defaultHasher();

  fs.mkdirSync(options.resultsRoot, { recursive: true });
  // Runs whose harness was killed (SIGKILL, a crash) still say "running": say what really happened to them.
  const found = markAbandonedRuns(options.resultsRoot);
  for (const id of found.abandoned) say(`notice: run ${id} was left 'running' by a harness that is gone; marked 'abandoned' in its run.json`);
  for (const { runId: id, reason } of found.unreadable) say(`warning: results/${id}/run.json could not be checked: ${reason}`);
  const owner = ownerIdentity();
  const runId = newRunId(options.resultsRoot, scenario.name);
  const dir = path.join(options.resultsRoot, runId);
  fs.mkdirSync(dir);
  const samples = new CsvAppender(path.join(dir, 'samples.csv'), SAMPLE_COLUMNS);
  const repetitions: RepetitionMetrics[] = [];
  let backendInfo: BackendInfo | undefined;
  const startedAt = new Date().toISOString();
  let status: RunStatus = 'running';

  const record = () => ({
    schema: 2,
    runId,
    status,
    owner,
    startedAt,
    endedAt: status === 'running' ? undefined : new Date().toISOString(),
    scenario,
    host: hostInfo(),
    harness: harnessInfo(),
    argv: options.argv ?? [],
    backend: backendInfo ?? { name: scenario.backend, note: 'not started yet' },
    sharingMode: ledgerModes.size
      ? [...ledgerModes].map((mode) => SHARING_MODES[mode]).join('; ')
      : 'not known yet (no ledger made)',
    image: { ...image.manifest, dir: image.dir },
    kernel: { version: kernel.version, systemMap: scenario.systemMap ?? image.path('systemMap'), layout: kernel.layout },
    hasher: hasher.name,
    cowMethod: cowMethods.size ? [...cowMethods].join('; ') : 'not known yet (no ledger made)',
    cowDefinition: COW_DEFINITION,
    cpuMethod: CPU_METHOD,
    repetitionsCompleted: repetitions.length,
    warnings,
    notes: [...notes],
    files: { samples: 'samples.csv', summary: 'summary.csv', logs: 'logs/' },
  });
  const writeSummary = () => {
    const rows = summaryRows(scenario, repetitions);
    const file = path.join(dir, 'summary.csv');
    fs.rmSync(file, { force: true });
    const summary = new CsvAppender(file, SUMMARY_COLUMNS);
    for (const row of rows) summary.append(row);
    summary.close();
    return rows;
  };
  let summary: SummaryRow[] = [];
  const finish = (final: RunStatus) => {
    if (status !== 'running') return;
    status = final;
    samples.close();
    try {
      summary = writeSummary();
    } catch (error) {
      // A summary that cannot be computed (e.g. a non-finite metric) must not leave run.json at 'running'.
      warnings.push(`summary.csv not written: ${errorMessage(error)}`);
      status = 'failed';
      writeJsonAtomically(path.join(dir, 'run.json'), record());
      if (final === 'completed') throw error; // otherwise the original error is the one to report
      return;
    }
    writeJsonAtomically(path.join(dir, 'run.json'), record());
  };
  writeJsonAtomically(path.join(dir, 'run.json'), record());
  // On Ctrl-C: the backend's own cleanup stops the guests; this one seals the results as interrupted.
  const unregister = onCleanup({ name: `results of ${runId}`, run: async () => finish('interrupted'), runSync: () => finish('interrupted') });
  say(`results: ${dir}`);

  try {
    for (const memoryMiB of scenario.memoryMiB) {
      for (let repetition = 1; repetition <= scenario.repetitions && !terminationRequested(); repetition++) {
        const label = `[${memoryMiB} MiB · rep ${repetition}/${scenario.repetitions}]`;
        const backend = await createBackend(scenario.backend, {
          accelerator: options.accelerator ?? 'auto',
          keepLogsIn: path.join(dir, 'logs', `m${memoryMiB}-r${repetition}`),
          onNotice: (message) => warnings.push(message),
        });
        try {
          backendInfo = backend.info();
          say(`${label} booting ${scenario.guests} × ${image.manifest.kernelRelease} (${backendInfo.accelerator}, ${scenario.kaslr ? 'KASLR on' : 'nokaslr'}, workload ${scenario.workload.name})`);
          const guests = await backend.provision(image, scenario.guests, {
            memoryMiB,
            kaslr: scenario.kaslr,
            workload: scenario.workload,
          });
          say(`${label} booted in ${(Math.max(...guests.map((g) => g.bootMs)) / 1000).toFixed(1)} s; scoring ${scenario.strategies.map((s) => s.label).join(', ')} every ${scenario.tickS} s for ${scenario.durationS} s`);
          const metrics = await runRepetition({ scenario, backend, guests, image, kernel, hasher, samples, runId, memoryMiB, repetition, say: (l) => say(`${label} ${l}`), notes,
            onLedger: (ledger) => {
              ledgerModes.add(ledger.mode);
              cowMethods.add(ledger.cowMethodDescription);
            },
          });
          if (metrics) repetitions.push(...metrics);
        } finally {
          await backend.close();
        }
      }
    }
    finish(terminationRequested() ? 'interrupted' : 'completed');
  } catch (error) {
    warnings.push(`run failed: ${(error as Error).message}`);
    finish('failed');
    throw error;
  } finally {
    unregister();
  }
  return { runId, dir, status, summary, repetitions, warnings };
}

interface RepetitionInput {
  scenario: Scenario;
  backend: Backend;
  guests: Guest[];
  image: GuestImage;
  kernel: KernelInfo;
  hasher: PageHasher;
  samples: CsvAppender<(typeof SAMPLE_COLUMNS)[number]>;
  runId: string;
  memoryMiB: number;
  repetition: number;
  say: (line: string) => void;
  notes: Set<string>;
  /** Told about each ledger made, so that run.json says how sharing and CoW were measured. */
  onLedger: (ledger: Ledger) => void;
}

/** A mean, or undefined where nothing was measured (never NaN: summary.csv refuses non-finite values). */
function meanOf(values: number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

/** The ticks after the first: the first does one-off work (locating kernels, checking System.map). */
function steadyState(values: number[]): number[] {
  return values.length > 1 ? values.slice(1) : values;
}

/**
 * Strategies score in a different order every tick (rotated), so that no strategy always runs right after
 * the same other one (and so inherits its cache state or its garbage).
 */
export function strategyOrder<T>(tracks: readonly T[], tick: number): T[] {
  const shift = tick % Math.max(1, tracks.length);
  return [...tracks.slice(shift), ...tracks.slice(0, shift)];
}

/** The tick loop of one repetition; returns per-strategy metrics, or undefined if interrupted before a tick. */
async function runRepetition(input: RepetitionInput): Promise<RepetitionMetrics[] | undefined> {
  const { scenario, guests, samples } = input;
  const baseContext = { guests, image: input.image, kernel: input.kernel, hasher: input.hasher };
  const { backend } = input;
  const tracks: StrategyTrack[] = scenario.strategies.map((spec) => {
    const strategy = createStrategy(spec.name, spec.options);
    const label = spec.label;
    // Enforcing backends (Xen) really share; elsewhere the ledger accounts what would be shared.
    const ledger = ledgerFor(backend, label, guests, input.hasher);
    input.onLedger(ledger);
    return { spec, label, strategy, ledger, scanCpu: [], cowCpu: [], verifyCpu: [], tickCpu: [], refusedScans: 0 };
  });
  const meter = new ThroughputMeter();
  if (scenario.warmupS > 0) {
    input.say(`warming up for ${scenario.warmupS} s before the first scan`);
    await sleepUntil(Date.now() + scenario.warmupS * 1000);
  }
  const opsPerSecond: number[] = [];
  const totalPages = guests.reduce((sum, g) => sum + g.memoryPages, 0);
  const t0 = Date.now();
  let lastTickS = 0;
  const ticks = Math.floor(scenario.durationS / scenario.tickS + 1e-9);

  for (let tick = 0; tick <= ticks; tick++) {
    await sleepUntil(t0 + tick * scenario.tickS * 1000);
    if (terminationRequested()) break;
    const dead = guests.find((g) => !g.alive());
    if (dead) throw new XmeError(`guest ${dead.id} stopped during the run`, `its serial log is kept in the results' logs/ folder`);
    const throughput = guests.map((g) => meter.sample(g));
    for (const value of throughput) if (value !== undefined) opsPerSecond.push(value);
    if (scenario.pauseDuringScan) await Promise.all(guests.map((g) => g.pause()));
    const tS = (Date.now() - t0) / 1000;
    lastTickS = tS;
    const line = new Map<StrategyTrack, string>();
    try {
      // Which pages the host really backs (QEMU: allocated in the RAM file); read once per tick, same for all.
      // Nobody reads a hole (resident-pages.ts), so this snapshot stays true while guests are paused.
      const residency = guests.map((g) => g.hostResidentPages?.());
      const context = { ...baseContext, residency };
      for (const track of strategyOrder(tracks, tick)) {
        track.ledger.setHostResidency?.(residency);
        // CPU of this thread only (harness/util/thread-cpu.ts): every call below runs on it.
        const cow = await measureThreadCpu(() => (tick > 0 ? track.ledger.detectCow() : []));
        const cowEvents = cow.value;
        if (tick > 0) track.cowCpu.push(cow.cpuMs);
        const scanned = await measureThreadCpu(() => track.strategy.scan(context));
        const scan = scanned.value;
        track.scanCpu.push(scanned.cpuMs);
        track.lastScan = scan;
        for (const note of scan.notes) input.notes.add(`${track.label} (${input.memoryMiB} MiB, rep ${input.repetition}): ${note}`);
        const verified = await measureThreadCpu(() => track.ledger.apply(scan.groups));
        const applied = verified.value;
        track.verifyCpu.push(verified.cpuMs);
        const tickCpuMs = (tick > 0 ? cow.cpuMs : 0) + scanned.cpuMs + verified.cpuMs;
        track.tickCpu.push(tickCpuMs);
        if (scan.refused) track.refusedScans++;

        const stats = track.ledger.stats();
        const status = scan.refused ? `refused: ${scan.refused}` : 'ok';
        const common = {
          run_id: input.runId,
          scenario: scenario.name,
          repetition: input.repetition,
          memory_mib: input.memoryMiB,
          tick,
          t_s: tS,
          strategy: track.label,
          sharing_mode: track.ledger.mode,
          cow_method: track.ledger.cowMethod,
          // content-reread cannot see a write that stores the bytes already there: its count is a lower bound.
          cow_count: track.ledger.cowCount,
        };
        const perGuestCow = guests.map(() => 0);
        for (const event of cowEvents) perGuestCow[event.guest]!++;
        samples.append({
          ...common,
          guest: 'all',
          guest_pages: totalPages,
          shared_pages: stats.sharedPages,
          frames_saved: stats.framesSaved,
          host_frames_saved: stats.hostFramesSaved,
          host_resident_pages: residency.every((map) => map !== undefined) ? residency.reduce((sum, map) => sum + countResident(map), 0) : undefined,
          zero_pages_shared: stats.zeroPagesShared,
          cow_faults_tick: cowEvents.length,
          cow_faults_total: stats.cowFaults,
          cow_copies_total: stats.cowCopies,
          scan_cpu_ms: scanned.cpuMs,
          scan_wall_ms: scanned.wallMs,
          verify_cpu_ms: verified.cpuMs,
          cow_cpu_ms: tick > 0 ? cow.cpuMs : undefined,
          tick_cpu_ms: tickCpuMs,
          cpu_method: CPU_METHOD,
          pages_read: scan.cost.pagesRead,
          bytes_hashed: scan.cost.bytesHashed,
          bytes_compared: scan.cost.bytesCompared + applied.bytesCompared,
          refused_pages: applied.refused.reduce((sum, r) => sum + r.pages.length, 0),
          kernel_code_pages: scan.metrics.kernel_code_pages,
          kernel_code_identical_pages: scan.metrics.kernel_code_identical_pages,
          kernel_rodata_pages: scan.metrics.kernel_rodata_pages,
          kernel_rodata_identical_pages: scan.metrics.kernel_rodata_identical_pages,
          strategy_metrics: metricsCell({ ...scan.metrics, ...track.ledger.extraMetrics() }),
          status,
        });
        guests.forEach((guest, g) => {
          samples.append({
            ...common,
            guest: guest.id,
            guest_pages: guest.memoryPages,
            shared_pages: stats.perGuest[g]!.sharedPages,
            host_resident_pages: residency[g] ? countResident(residency[g]) : undefined,
            cow_faults_tick: perGuestCow[g],
            cow_faults_total: stats.perGuest[g]!.cowFaults,
            workload_ops_per_s: throughput[g],
            status,
          });
        });
        line.set(
          track,
          scan.refused
            ? `${track.label}: REFUSED`
            : `${track.label}: ${stats.sharedPages} shared, ${stats.cowFaults} CoW, tick ${tickCpuMs.toFixed(1)} ms CPU`,
        );
        if (scan.refused && tick === 0) input.say(`${track.label} refused: ${scan.refused}`);
      }
    } finally {
      if (scenario.pauseDuringScan) await Promise.all(guests.filter((g) => g.alive()).map((g) => g.resume()));
    }
    input.say(`t=${tS.toFixed(0)}s  ${tracks.map((t) => line.get(t)).join(' | ')}`);
  }

  if (tracks.every((t) => t.scanCpu.length === 0)) return undefined;
  const spanMin = lastTickS / 60;
  const guestGiB = (totalPages * PAGE_SIZE) / 2 ** 30;
  const semantic = tracks.find((t) => t.label === 'semantic') ?? tracks.find((t) => t.spec.name === 'semantic');
  const steadyScan = (track: StrategyTrack) => meanOf(steadyState(track.scanCpu));
  const steadyTick = (track: StrategyTrack) => meanOf(steadyState(track.tickCpu));
  const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b !== undefined && b > 0 ? a / b : undefined);
  return tracks.map((track): RepetitionMetrics => {
    const stats = track.ledger.stats();
    const metrics = track.lastScan?.metrics ?? {};
    const values: RepetitionMetrics['values'] = {
      shared_pages: stats.sharedPages,
      frames_saved: stats.framesSaved,
      frames_saved_pct: (stats.framesSaved / totalPages) * 100,
      host_frames_saved: stats.hostFramesSaved,
      zero_pages_shared: stats.zeroPagesShared,
      cow_faults: stats.cowFaults,
      cow_copies: stats.cowCopies,
      cow_faults_per_min: spanMin > 0 ? stats.cowFaults / spanMin : undefined,
      scan_cpu_ms: steadyScan(track),
      first_scan_cpu_ms: track.scanCpu[0],
      scan_cpu_ms_per_gib: ratio(steadyScan(track), guestGiB),
      cow_cpu_ms: meanOf(track.cowCpu),
      verify_cpu_ms: meanOf(steadyState(track.verifyCpu)),
      tick_cpu_ms: steadyTick(track),
      refused_scans: track.refusedScans,
      workload_ops_per_s: meanOf(opsPerSecond),
    };
    if (metrics.kernel_code_pages) values.kernel_code_shareability_pct = ((metrics.kernel_code_identical_pages ?? 0) / metrics.kernel_code_pages) * 100;
    if (metrics.kernel_rodata_pages) values.kernel_rodata_shareability_pct = ((metrics.kernel_rodata_identical_pages ?? 0) / metrics.kernel_rodata_pages) * 100;
    if (semantic && semantic !== track) {
      values.scan_cpu_ratio_vs_semantic = ratio(steadyScan(track), steadyScan(semantic));
      values.tick_cpu_ratio_vs_semantic = ratio(steadyTick(track), steadyTick(semantic));
    }
    return {
      memoryMiB: input.memoryMiB,
      repetition: input.repetition,
      strategy: track.label,
      values,
      // The CoW figures' method is the ledger's that counted them, not a guess from the backend's name.
      methods: { cow_faults: track.ledger.cowMethodDescription, cow_faults_per_min: `cow_faults / time between the first and the last tick; ${track.ledger.cowMethodDescription}` },
    };
  });
}

function countResident(map: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < map.length; i++) count += map[i]!;
  return count;
}

/** Strategy- and ledger-specific figures (names carry their unit) as one `name=value;…` cell. */
function metricsCell(metrics: Record<string, number>): string | undefined {
  const entries = Object.entries(metrics).filter(([, value]) => Number.isFinite(value));
  return entries.length ? entries.map(([name, value]) => `${name}=${value}`).join(';') : undefined;
}
