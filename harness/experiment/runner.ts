/**
 * Runs a scenario: for each memory size and repetition, boot identical guests, run the tick loop on them
 * (tick-loop.ts), and hand every sample to the writers as it comes (writers/: samples.csv, summary.csv,
 * run.json, and whatever the caller adds, e.g. the console table). At the end the summary over repetitions
 * goes to the writers too. On Ctrl-C the guests are stopped and the results sealed as "interrupted".
 *
 * Where guests and the image come from is injectable (RunOptions.backendFactory, .image), so that the whole
 * run can be tested on in-memory stand-ins (harness/testing/fake-backend.ts); by default it is the scenario's
 * backend and an image built from Debian packages, as `xme run` does.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage, XmeError } from '../util/errors.ts';
import { onCleanup, terminationRequested } from '../util/cleanup.ts';
import { backendFactory, type BackendFactory } from '../backends/registry.ts';
import type { BackendInfo } from '../backends/types.ts';
import type { AcceleratorRequest } from '../backends/qemu/accelerator.ts';
import { buildImage } from '../images/build.ts';
import type { GuestImage } from '../images/manifest.ts';
import { kernelInfo, type KernelInfo } from '../introspection/kernel-info.ts';
import { defaultHasher } from '../hashing/page-hasher.ts';
import type { Ledger } from '../sharing/ledger.ts';
import type { Scenario } from './scenario.ts';
import { harnessInfo, hostInfo } from './run-record.ts';
import { markAbandonedRuns } from './abandoned-runs.ts';
import { ownerIdentity } from '../util/process-identity.ts';
import { summaryRows, type RepetitionMetrics, type SummaryRow } from './summary.ts';
import { runRepetition, strategyOrder } from './tick-loop.ts';
import { guestRamFor } from './guest-ram-choice.ts';
import type { ResultWriter, RunEnd, RunHeader, RunStatus } from './writers/result-writer.ts';
import { SamplesCsvWriter } from './writers/samples-csv.ts';
import { SummaryCsvWriter } from './writers/summary-csv.ts';
import { RunJsonWriter } from './writers/run-json.ts';
import { OverheadCsvWriter } from './writers/overhead-csv.ts';
import { recoverAbandonedKsmState } from '../host/ksm.ts';
import { ReportWriter } from '../report/report-writer.ts';
import { checkRecordable, Recorder, type TickChoice } from '../recording/recorder.ts';

export type { RunStatus } from './writers/result-writer.ts';

/** The image to boot and what the harness knows of its kernel (System.map, layout, build version). */
export interface PreparedImage {
  image: GuestImage;
  kernel: KernelInfo;
}

export interface RunOptions {
  scenario: Scenario;
  accelerator?: AcceleratorRequest;
  /** Parent folder of results/<run-id>/. */
  resultsRoot: string;
  /** Progress for a person (one line at a time). */
  onProgress?: (line: string) => void;
  argv?: string[];
  /** Where each repetition's guests come from; default: the scenario's backend (backends/registry.ts). */
  backendFactory?: BackendFactory;
  /** The image and kernel to boot; default: the scenario's image, built on first use, with the scenario's System.map if it names one. */
  image?: PreparedImage;
  /** Writers besides samples.csv, summary.csv, report.html and run.json, which are always written (e.g. the console table). */
  writers?: ResultWriter[];
  /** Asked before every tick and repetition; default: a termination signal arrived (util/cleanup.ts). */
  stopRequested?: () => boolean;
  /** The run's folder name under resultsRoot (default: time stamp + scenario); must not exist yet. A suite names each cell's run by its cell id. */
  runId?: string;
  /**
   * The number of the first repetition (default 1). A suite runs each repetition of a scenario as a run of its
   * own (a cell); numbering it as in the whole scenario keeps samples.csv's repetition column and the strategy
   * order (rotated by repetition) what an unsharded run would have.
   */
  firstRepetition?: number;
  /** `xme run --record`: keep guest memory at these ticks in results/<run-id>/recording/ (harness/recording/). */
  record?: { ticks: TickChoice };
}

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

/** The scenario's image (built on first use, then only checked) and its kernel. */
export async function prepareImage(scenario: Scenario, say: (line: string) => void): Promise<PreparedImage> {
  say(`image '${scenario.image}': checking (built from Debian packages on first use)`);
  const image = (await buildImage(scenario.image, { onStep: (m) => say(`  ${m}`) })).image;
  return { image, kernel: kernelInfo(image, scenario.systemMap) };
}

export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { scenario } = options;
  const say = options.onProgress ?? (() => undefined);
  const stopRequested = options.stopRequested ?? terminationRequested;
  const backends = options.backendFactory ?? backendFactory(scenario.backend);
  const warnings: string[] = [];
  const notes = new Set<string>();
  const ledgerModes = new Set<Ledger['mode']>();
  const cowMethods = new Set<string>();

  if (options.record) checkRecordable(scenario);
  await backends.check();
  const { image, kernel } = options.image ?? (await prepareImage(scenario, say));
  const hasher = await defaultHasher();

  fs.mkdirSync(options.resultsRoot, { recursive: true });
  // Runs whose harness was killed (SIGKILL, a crash) still say "running": say what really happened to them.
  const found = markAbandonedRuns(options.resultsRoot);
  for (const id of found.abandoned) say(`notice: run ${id} was left 'running' by a harness that is gone; marked 'abandoned' in its run.json`);
  for (const { runId: id, reason } of found.unreadable) say(`warning: results/${id}/run.json could not be checked: ${reason}`);
  // A harness killed with SIGKILL during a KSM run left the host's KSM knobs changed: put them back first.
  const restoredKsm = recoverAbandonedKsmState((message) => say(`notice: ${message}`));
  if (restoredKsm) warnings.push(`restored the host's KSM settings left by an earlier xme run that was killed: ${Object.entries(restoredKsm).map(([k, v]) => `${k}=${v}`).join(', ')}`);
  const runId = options.runId ?? newRunId(options.resultsRoot, scenario.name);
  const dir = path.join(options.resultsRoot, runId);
  if (options.runId !== undefined && fs.existsSync(dir)) throw new XmeError(`results folder ${dir} exists already`, 'remove it, or give another results folder');
  fs.mkdirSync(dir);
  const header: RunHeader = {
    runId,
    dir,
    scenario,
    owner: ownerIdentity(),
    startedAt: new Date().toISOString(),
    host: hostInfo(),
    harness: harnessInfo(),
    argv: options.argv ?? [],
    image,
    kernel,
    systemMap: scenario.systemMap ?? image.path('systemMap'),
    hasher: hasher.name,
  };
  // In this order: the report reads the two CSVs, complete by then, and comes before run.json so that a
  // report that cannot be made is a warning run.json records (the CSVs are never lost to it).
  const recorder = options.record ? Recorder.create(path.join(dir, 'recording'), options.record.ticks, { runId, scenario, image, kernel, systemMapFile: header.systemMap }) : undefined;
  const writers: ResultWriter[] = [new SamplesCsvWriter(), new SummaryCsvWriter(), new OverheadCsvWriter(), new ReportWriter(), new RunJsonWriter(), ...(options.writers ?? [])];
  const prepareEnd = () => Promise.all(writers.map((writer) => writer.prepareEnd?.()));
  const repetitions: RepetitionMetrics[] = [];
  let backendInfo: BackendInfo | undefined;
  let status: RunStatus = 'running';
  let summary: SummaryRow[] = [];

  /** Seals the run once, whatever ended it; throws only if a completed run's summary cannot be made. */
  const finish = (final: Exclude<RunStatus, 'running' | 'abandoned'>) => {
    if (status !== 'running') return;
    let sealed = final;
    let summaryError: unknown;
    try {
      summary = summaryRows(scenario, repetitions);
    } catch (error) {
      // A summary that cannot be computed (e.g. a non-finite metric) must not leave run.json at 'running'.
      warnings.push(`summary.csv not written: ${errorMessage(error)}`);
      sealed = 'failed';
      summaryError = error;
    }
    status = sealed;
    recorder?.finish(sealed);
    const end: RunEnd = {
      status: sealed,
      endedAt: new Date().toISOString(),
      backend: backendInfo,
      sharingModes: [...ledgerModes],
      cowMethods: [...cowMethods],
      repetitions,
      summary: summaryError === undefined ? summary : undefined,
      warnings,
      notes: [...notes],
    };
    for (const writer of writers) writer.end(end);
    if (summaryError !== undefined && final === 'completed') throw summaryError; // otherwise the original error is the one to report
  };
  for (const writer of writers) writer.begin?.(header);
  // On Ctrl-C: the backend's own cleanup stops the guests; this one seals the results as interrupted.
  const unregister = onCleanup({ name: `results of ${runId}`, run: async () => finish('interrupted'), runSync: () => finish('interrupted') });
  say(`results: ${dir}`);

  try {
    for (const memoryMiB of scenario.memoryMiB) {
      const first = options.firstRepetition ?? 1;
      const last = first + scenario.repetitions - 1;
      for (let repetition = first; repetition <= last && !stopRequested(); repetition++) {
        const label = `[${memoryMiB} MiB · rep ${repetition}/${last}]`;
        // Together: one set of guests scored by every strategy. Apart: a set per strategy, in an order that
        // rotates with the repetition, so that no strategy always runs first (on a fresher, cooler host).
        const sets = scenario.strategyGuests === 'apart' ? strategyOrder(scenario.strategies, repetition - 1).map((spec) => [spec]) : [scenario.strategies];
        for (const strategies of sets) {
          if (stopRequested()) break;
          const setLabel = sets.length > 1 ? `${label} ${strategies[0]!.label}:` : label;
          const setScenario = { ...scenario, strategies };
          const backend = await backends.create({
            accelerator: options.accelerator ?? 'auto',
            keepLogsIn: path.join(dir, 'logs', sets.length > 1 ? `m${memoryMiB}-r${repetition}-${strategies[0]!.label}` : `m${memoryMiB}-r${repetition}`),
            onNotice: (message) => warnings.push(message),
          });
          try {
            backendInfo = backend.info();
            const guestRam = guestRamFor(strategies);
            say(`${setLabel} ${backend.replayTicks ? 'loading recorded' : 'booting'} ${scenario.guests} × ${image.manifest.kernelRelease} (${backendInfo.accelerator}, ${scenario.kaslr ? 'KASLR on' : 'nokaslr'}, workload ${scenario.workload.name}${guestRam === 'anonymous-mergeable' ? ', anonymous mergeable RAM' : ''})`);
            const guests = await backend.provision(image, scenario.guests, {
              memoryMiB,
              kaslr: scenario.kaslr,
              workload: scenario.workload,
              guestRam,
              ...(scenario.cpuModels ? { cpuModels: scenario.cpuModels } : {}),
            });
            say(`${setLabel} booted in ${(Math.max(...guests.map((g) => g.bootMs)) / 1000).toFixed(1)} s; scoring ${strategies.map((s) => s.label).join(', ')} every ${scenario.tickS} s for ${scenario.durationS} s`);
            const metrics = await runRepetition({
              scenario: setScenario, backend, guests, image, kernel, hasher, memoryMiB, repetition, stopRequested,
              emit: (sample) => {
                for (const writer of writers) writer.sample?.(sample);
              },
              say: (line) => say(`${setLabel} ${line}`),
              note: (text) => notes.add(text),
              warn: (text) => warnings.push(text),
              recorder: recorder?.segment(memoryMiB, repetition, guests, backend.info()),
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
    }
    await prepareEnd();
    finish(stopRequested() ? 'interrupted' : 'completed');
    if (recorder) {
      const size = recorder.size();
      const perGiB = size.guestBytes > 0 ? ` (${((size.pageFileBytes / size.guestBytes) * 1024).toFixed(1)} MiB per GiB of guest memory)` : '';
      say(`recording: ${recorder.dir}: ${size.ticks} tick(s), ${(size.pageFileBytes / 2 ** 20).toFixed(1)} MiB of page files for ${(size.guestBytes / 2 ** 30).toFixed(2)} GiB of guest memory${perGiB}; replay it with: xme replay ${recorder.dir}`);
    }
  } catch (error) {
    warnings.push(`run failed: ${(error as Error).message}`);
    await prepareEnd();
    finish('failed');
    throw error;
  } finally {
    unregister();
  }
  return { runId, dir, status, summary, repetitions, warnings };
}
