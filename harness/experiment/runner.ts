/**
 * Runs a scenario: for each memory size and repetition, boot identical guests, then every tick score every
 * strategy on the same (paused) guests — CoW detection on what was shared at the previous tick, a scan, the
 * ledger's byte-verified apply — and append the rows to samples.csv. At the end, summary.csv and run.json.
 * Rows are written as they come; on Ctrl-C the guests are stopped and run.json says "interrupted".
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';
import { onCleanup, terminationRequested } from '../util/cleanup.ts';
import { PAGE_SIZE, type Guest } from '../backends/types.ts';
import { checkBackendAvailable, createBackend } from '../backends/registry.ts';
import type { Backend, BackendInfo } from '../backends/types.ts';
import type { AcceleratorRequest } from '../backends/qemu/accelerator.ts';
import { buildImage } from '../images/build.ts';
import type { GuestImage } from '../images/manifest.ts';
import { kernelInfo, type KernelInfo } from '../introspection/kernel-info.ts';
import { defaultHasher, type PageHasher } from '../hashing/page-hasher.ts';
import { COW_METHOD_CONTENT_REREAD, SharingLedger } from '../sharing/ledger.ts';
import { COW_METHOD_HYPERVISOR, EnforcedLedger } from '../sharing/enforced-ledger.ts';
import { createStrategy } from '../../strategies/registry.ts';
import type { ScanResult, Strategy } from '../../strategies/types.ts';
import type { Scenario } from './scenario.ts';
import { CsvAppender } from './csv-writer.ts';
import { CPU_METHOD, SAMPLE_COLUMNS, SUMMARY_COLUMNS } from './samples.ts';
import { harnessInfo, hostInfo, writeJsonAtomically } from './run-record.ts';
import { summaryRows, type RepetitionMetrics, type SummaryRow } from './summary.ts';

export interface RunOptions {
  scenario: Scenario;
  accelerator?: AcceleratorRequest;
  /** Parent folder of results/<run-id>/. */
  resultsRoot: string;
  /** Progress for a person (one line at a time). */
  onProgress?: (line: string) => void;
  argv?: string[];
}

export type RunStatus = 'running' | 'completed' | 'interrupted' | 'failed';

export interface RunOutcome {
  runId: string;
  dir: string;
  status: RunStatus;
  summary: SummaryRow[];
  repetitions: RepetitionMetrics[];
  warnings: string[];
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
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
  strategy: Strategy;
  ledger: SharingLedger | EnforcedLedger;
  cowMethod: string;
  scanCpu: number[];
  cowCpu: number[];
  verifyCpu: number[];
  refusedScans: number;
  lastScan?: ScanResult;
}

export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { scenario } = options;
  const say = options.onProgress ?? (() => undefined);
  const warnings: string[] = [];
  const notes = new Set<string>();

  await checkBackendAvailable(scenario.backend);
  say(`image '${scenario.image}': checking (built from Debian packages on first use)`);
  const image: GuestImage = (await buildImage(scenario.image, { onStep: (m) => say(`  ${m}`) })).image;
  const kernel: KernelInfo = kernelInfo(image, scenario.systemMap);
  const hasher: PageHasher = await defaultHasher();

  fs.mkdirSync(options.resultsRoot, { recursive: true });
  const runId = newRunId(options.resultsRoot, scenario.name);
  const dir = path.join(options.resultsRoot, runId);
  fs.mkdirSync(dir);
  const samples = new CsvAppender(path.join(dir, 'samples.csv'), SAMPLE_COLUMNS);
  const repetitions: RepetitionMetrics[] = [];
  let backendInfo: BackendInfo | undefined;
  const startedAt = new Date().toISOString();
  let status: RunStatus = 'running';

  const record = () => ({
    schema: 1,
    runId,
    status,
    startedAt,
    endedAt: status === 'running' ? undefined : new Date().toISOString(),
    scenario,
    host: hostInfo(),
    harness: harnessInfo(),
    argv: options.argv ?? [],
    backend: backendInfo ?? { name: scenario.backend, note: 'not started yet' },
    sharingMode: scenario.backend === 'xen'
      ? 'enforced (the hypervisor backs byte-verified pages by one frame; counts are its own)'
      : 'accounted (QEMU does not merge pages; the ledger accounts what each strategy would share)',
    image: { ...image.manifest, dir: image.dir },
    kernel: { version: kernel.version, systemMap: scenario.systemMap ?? image.path('systemMap'), layout: kernel.layout },
    hasher: hasher.name,
    cowMethod: scenario.backend === 'xen'
      ? `${COW_METHOD_HYPERVISOR}: decreases of each domain's shr_pages between ticks (the hypervisor's unshares; the harness never unshares)`
      : `${COW_METHOD_CONTENT_REREAD}: every shared page re-read and re-hashed (${hasher.name}) each tick; a write of identical bytes is not seen (lower bound)`,
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
    summary = writeSummary();
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
          say(`${label} booted in ${(Math.max(...guests.map((g) => g.bootMs)) / 1000).toFixed(1)} s; scoring ${scenario.strategies.map((s) => s.name).join(', ')} every ${scenario.tickS} s for ${scenario.durationS} s`);
          const metrics = await runRepetition({ scenario, backend, guests, image, kernel, hasher, samples, runId, memoryMiB, repetition, say: (l) => say(`${label} ${l}`), notes });
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
}

/** The tick loop of one repetition; returns per-strategy metrics, or undefined if interrupted before a tick. */
async function runRepetition(input: RepetitionInput): Promise<RepetitionMetrics[] | undefined> {
  const { scenario, guests, samples } = input;
  const context = { guests, image: input.image, kernel: input.kernel, hasher: input.hasher };
  const { backend } = input;
  const tracks: StrategyTrack[] = scenario.strategies.map((spec) => {
    const strategy = createStrategy(spec.name, spec.options);
    // Enforcing backends (Xen) really share; elsewhere the ledger accounts what would be shared.
    const ledger = backend.enforcesSharing && backend.share && backend.counters
      ? new EnforcedLedger(strategy.name, guests, input.hasher, { share: backend.share.bind(backend), counters: backend.counters.bind(backend) })
      : new SharingLedger(strategy.name, guests, input.hasher);
    const cowMethod = ledger instanceof EnforcedLedger ? COW_METHOD_HYPERVISOR : COW_METHOD_CONTENT_REREAD;
    return { spec, strategy, ledger, cowMethod, scanCpu: [], cowCpu: [], verifyCpu: [], refusedScans: 0 };
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
    const line: string[] = [];
    try {
      for (const track of tracks) {
        let cpu = process.cpuUsage();
        const cowEvents = tick > 0 ? await track.ledger.detectCow() : [];
        const cowCpuMs = cpuMs(cpu);
        if (tick > 0) track.cowCpu.push(cowCpuMs);

        cpu = process.cpuUsage();
        const wall = performance.now();
        const scan = await track.strategy.scan(context);
        const scanCpuMs = cpuMs(cpu);
        const scanWallMs = performance.now() - wall;
        track.scanCpu.push(scanCpuMs);
        track.lastScan = scan;
        for (const note of scan.notes) input.notes.add(`${track.strategy.name} (${input.memoryMiB} MiB, rep ${input.repetition}): ${note}`);

        cpu = process.cpuUsage();
        const applied = await track.ledger.apply(scan.groups);
        const verifyCpuMs = cpuMs(cpu);
        track.verifyCpu.push(verifyCpuMs);
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
          strategy: track.strategy.name,
          sharing_mode: track.ledger instanceof EnforcedLedger ? 'enforced' : 'accounted',
          cow_method: track.cowMethod,
        };
        const perGuestCow = guests.map(() => 0);
        for (const event of cowEvents) perGuestCow[event.guest]!++;
        samples.append({
          ...common,
          guest: 'all',
          guest_pages: totalPages,
          shared_pages: stats.sharedPages,
          frames_saved: stats.framesSaved,
          zero_pages_shared: stats.zeroPagesShared,
          cow_faults_tick: cowEvents.length,
          cow_faults_total: stats.cowFaults,
          scan_cpu_ms: scanCpuMs,
          scan_wall_ms: scanWallMs,
          verify_cpu_ms: verifyCpuMs,
          cow_cpu_ms: tick > 0 ? cowCpuMs : undefined,
          cpu_method: CPU_METHOD,
          pages_read: scan.cost.pagesRead,
          bytes_hashed: scan.cost.bytesHashed,
          bytes_compared: scan.cost.bytesCompared + applied.bytesCompared,
          refused_pages: applied.refused.reduce((sum, r) => sum + r.pages.length, 0),
          kernel_code_pages: scan.metrics.kernel_code_pages,
          kernel_code_identical_pages: scan.metrics.kernel_code_identical_pages,
          kernel_rodata_pages: scan.metrics.kernel_rodata_pages,
          kernel_rodata_identical_pages: scan.metrics.kernel_rodata_identical_pages,
          status,
        });
        guests.forEach((guest, g) => {
          samples.append({
            ...common,
            guest: guest.id,
            guest_pages: guest.memoryPages,
            shared_pages: stats.perGuest[g]!.sharedPages,
            cow_faults_tick: perGuestCow[g],
            cow_faults_total: stats.perGuest[g]!.cowFaults,
            workload_ops_per_s: throughput[g],
            status,
          });
        });
        line.push(
          scan.refused
            ? `${track.strategy.name}: REFUSED`
            : `${track.strategy.name}: ${stats.sharedPages} shared, ${stats.cowFaults} CoW, scan ${scanCpuMs.toFixed(1)} ms`,
        );
        if (scan.refused && tick === 0) input.say(`${track.strategy.name} refused: ${scan.refused}`);
      }
    } finally {
      if (scenario.pauseDuringScan) await Promise.all(guests.filter((g) => g.alive()).map((g) => g.resume()));
    }
    input.say(`t=${tS.toFixed(0)}s  ${line.join(' | ')}`);
  }

  if (tracks.every((t) => t.scanCpu.length === 0)) return undefined;
  const spanMin = lastTickS / 60;
  const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : Number.NaN);
  const guestGiB = (totalPages * PAGE_SIZE) / 2 ** 30;
  const semanticScan = tracks.find((t) => t.spec.name === 'semantic');
  // The first scan does one-off work (locating kernels, checking System.map): steady state is the rest.
  const steadyScanCpu = (track: StrategyTrack) => mean(track.scanCpu.length > 1 ? track.scanCpu.slice(1) : track.scanCpu);
  return tracks.map((track): RepetitionMetrics => {
    const stats = track.ledger.stats();
    const metrics = track.lastScan?.metrics ?? {};
    const values: RepetitionMetrics['values'] = {
      shared_pages: stats.sharedPages,
      frames_saved: stats.framesSaved,
      frames_saved_pct: (stats.framesSaved / totalPages) * 100,
      zero_pages_shared: stats.zeroPagesShared,
      cow_faults: stats.cowFaults,
      cow_faults_per_min: spanMin > 0 ? stats.cowFaults / spanMin : Number.NaN,
      scan_cpu_ms: steadyScanCpu(track),
      first_scan_cpu_ms: track.scanCpu[0] ?? Number.NaN,
      scan_cpu_ms_per_gib: steadyScanCpu(track) / guestGiB,
      cow_cpu_ms: mean(track.cowCpu),
      verify_cpu_ms: mean(track.verifyCpu),
      refused_scans: track.refusedScans,
      workload_ops_per_s: mean(opsPerSecond),
    };
    if (metrics.kernel_code_pages) values.kernel_code_shareability_pct = ((metrics.kernel_code_identical_pages ?? 0) / metrics.kernel_code_pages) * 100;
    if (metrics.kernel_rodata_pages) values.kernel_rodata_shareability_pct = ((metrics.kernel_rodata_identical_pages ?? 0) / metrics.kernel_rodata_pages) * 100;
    if (semanticScan && semanticScan !== track) values.scan_cpu_ratio_vs_semantic = steadyScanCpu(track) / steadyScanCpu(semanticScan);
    return { memoryMiB: input.memoryMiB, repetition: input.repetition, strategy: track.strategy.name, values };
  });
}
