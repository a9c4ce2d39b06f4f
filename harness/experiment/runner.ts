/**
 * Runs a scenario: for each memory size and repetition, boot identical guests, run the tick loop on them
 * (tick-loop.ts), and hand every sample to the writers the caller chose as it comes (the command line's
 * choice: harness/cli/run-outputs.ts). At the end the summary over repetitions goes to the writers too,
 * then the folder outputs (the report) are made from the finished files, and run.json, which the runner
 * always writes, is sealed with every warning. On Ctrl-C the guests are stopped and the results sealed as
 * "interrupted".
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
import { buildSystemImage } from '../images/system-build.ts';
import { isSystemImage } from '../images/system-recipes.ts';
import type { GuestImage } from '../images/manifest.ts';
import { kernelInfo, type KernelInfo } from '../introspection/kernel-info.ts';
import { defaultHasher } from '../hashing/page-hasher.ts';
import type { CowFaultCosts, Ledger } from '../sharing/ledger.ts';
import type { Scenario } from '../scenario/scenario.ts';
import { harnessInfo, hostInfo } from '../results/provenance.ts';
import { runRecord, writeRunRecord } from '../results/run-record.ts';
import type { RepetitionMetrics, SummaryRow } from '../results/summary.ts';
import type { SlowdownRow } from '../results/overhead.ts';
import type { FolderOutput, ResultWriter, TickObserver } from '../results/result-writer.ts';
import type { RunEnd, RunHeader, RunStatus } from '../results/run.ts';
import { ownerIdentity } from '../util/process-identity.ts';
import { summaryRows } from './summary.ts';
import { slowdownRows } from './slowdown.ts';
import { runRepetition, strategyOrder } from './tick-loop.ts';
import { guestRamFor } from './guest-ram-choice.ts';

/** The image to boot and what the harness knows of its kernel (System.map, layout, build version). */
export interface PreparedImage {
  image: GuestImage;
  kernel: KernelInfo;
  /** A mixed fleet (scenario.guestImages): guest i boots guestImages[i % length]; image is the first. */
  guestImages?: GuestImage[];
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
  /** What to write besides run.json (which the runner always writes): samples.csv, summary.csv, the console table, … */
  writers?: readonly ResultWriter[];
  /** Outputs made from the folder's files once the writers have ended (the report). */
  folderOutputs?: readonly FolderOutput[];
  /** Warnings the caller already has for this run's run.json (e.g. host state it repaired before the run). */
  warnings?: readonly string[];
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
  /** Per-fault CoW costs for cow_model_cpu_ms (the composition measures them: harness/cli/run-outputs.ts); recorded in run.json. */
  cowFaultCosts?: CowFaultCosts;
}

export interface RunOutcome {
  runId: string;
  dir: string;
  status: RunStatus;
  summary: SummaryRow[];
  overhead: SlowdownRow[] | undefined;
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
  const onStep = (m: string) => say(`  ${m}`);
  // A system image (a real Debian system on one disk) has its own builder; both kinds boot the same kernel.
  const build = async (name: string) => (isSystemImage(name) ? (await buildSystemImage(name, { onStep })).image : (await buildImage(name, { onStep })).image);
  const image = await build(scenario.image);
  if (!scenario.guestImages) return { image, kernel: kernelInfo(image, scenario.systemMap) };
  const built = new Map<string, GuestImage>([[scenario.image, image]]);
  for (const name of scenario.guestImages) if (!built.has(name)) built.set(name, await build(name));
  return { image, kernel: kernelInfo(image), guestImages: scenario.guestImages.map((name) => built.get(name)!) };
}

/** overhead.csv's rows where the scenario names a baseline; undefined otherwise. */
function overheadRows(scenario: Scenario, repetitions: readonly RepetitionMetrics[]): SlowdownRow[] | undefined {
  return scenario.baseline ? slowdownRows(scenario.name, scenario.baseline, repetitions) : undefined;
}

/** One observer for the tick loop from every writer's (none: undefined). */
function combinedObserver(observers: readonly TickObserver[]): TickObserver | undefined {
  if (observers.length === 0) return undefined;
  return {
    async afterTick(tick, tS, guests, residency) {
      for (const observer of observers) await observer.afterTick(tick, tS, guests, residency);
    },
  };
}

export async function runExperiment(options: RunOptions): Promise<RunOutcome> {
  const { scenario } = options;
  const say = options.onProgress ?? (() => undefined);
  const stopRequested = options.stopRequested ?? terminationRequested;
  const backends = options.backendFactory ?? backendFactory(scenario.backend);
  const writers = options.writers ?? [];
  const folderOutputs = options.folderOutputs ?? [];
  const warnings: string[] = [...(options.warnings ?? [])];
  const notes = new Set<string>();
  const ledgerModes = new Set<Ledger['mode']>();
  const cowMethods = new Set<string>();

  await backends.check();
  const { image, kernel, guestImages } = options.image ?? (await prepareImage(scenario, say));
  const kernels = [...new Set((guestImages ?? [image]).map((each) => each.manifest.kernelRelease))].join(' + ');
  const hasher = await defaultHasher();

  fs.mkdirSync(options.resultsRoot, { recursive: true });
  const runId = options.runId ?? newRunId(options.resultsRoot, scenario.name);
  const dir = path.join(options.resultsRoot, runId);
  if (options.runId !== undefined && fs.existsSync(dir))
    throw new XmeError(`results folder ${dir} exists already`, 'remove it, or give another results folder');
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
    ...(options.cowFaultCosts ? { cowFaultCosts: options.cowFaultCosts } : {}),
  };
  const prepareEnd = () => Promise.all([...writers, ...folderOutputs].map((output) => output.prepareEnd?.()));
  const repetitions: RepetitionMetrics[] = [];
  let backendInfo: BackendInfo | undefined;
  let status: RunStatus = 'running';
  let summary: SummaryRow[] = [];
  let overhead: SlowdownRow[] | undefined;

  /**
   * Seals the run once, whatever ended it, in three steps that each need the one before: the writers finish
   * their files; the folder outputs are made from those files; run.json records the ending with every warning.
   * Throws only if a completed run's summary cannot be made.
   */
  const finish = (final: Exclude<RunStatus, 'running' | 'abandoned'>) => {
    if (status !== 'running') return;
    let sealed = final;
    let summaryError: unknown;
    try {
      summary = summaryRows(scenario, repetitions);
      overhead = overheadRows(scenario, repetitions);
    } catch (error) {
      // A summary that cannot be computed (e.g. a non-finite metric) must not leave run.json at 'running'.
      warnings.push(`summary.csv not written: ${errorMessage(error)}`);
      sealed = 'failed';
      summaryError = error;
    }
    status = sealed;
    const end: RunEnd = {
      status: sealed,
      endedAt: new Date().toISOString(),
      backend: backendInfo,
      sharingModes: [...ledgerModes],
      cowMethods: [...cowMethods],
      repetitions,
      summary: summaryError === undefined ? summary : undefined,
      overhead: summaryError === undefined ? overhead : undefined,
      warnings: [...warnings],
      notes: [...notes],
    };
    for (const writer of writers) warnings.push(...(writer.end?.(end) ?? []));
    const record = runRecord(header, { ...end, warnings: [...warnings] });
    for (const output of folderOutputs) warnings.push(...output.make(dir, record));
    writeRunRecord(dir, { ...record, warnings: [...warnings] });
    if (summaryError !== undefined && final === 'completed') throw summaryError; // otherwise the original error is the one to report
  };
  writeRunRecord(dir, runRecord(header, undefined));
  for (const output of [...writers, ...folderOutputs]) output.begin?.(header);
  // On Ctrl-C: the backend's own cleanup stops the guests; this one seals the results as interrupted.
  const unregister = onCleanup({ name: `results of ${runId}`, run: async () => finish('interrupted'), runSync: () => finish('interrupted') });
  say(`results: ${dir}`);

  try {
    for (const guestCount of scenario.guests)
      for (const memoryMiB of scenario.memoryMiB) {
        const first = options.firstRepetition ?? 1;
        const last = first + scenario.repetitions - 1;
        for (let repetition = first; repetition <= last && !stopRequested(); repetition++) {
          const sweepsGuests = scenario.guests.length > 1;
          const label = `[${sweepsGuests ? `${guestCount} guests · ` : ''}${memoryMiB} MiB · rep ${repetition}/${last}]`;
          // Together: one set of guests scored by every strategy. Apart: a set per strategy, in an order that
          // rotates with the repetition, so that no strategy always runs first (on a fresher, cooler host).
          const sets = scenario.strategyGuests === 'apart' ? strategyOrder(scenario.strategies, repetition - 1).map((spec) => [spec]) : [scenario.strategies];
          for (const strategies of sets) {
            if (stopRequested()) break;
            const setLabel = sets.length > 1 ? `${label} ${strategies[0]!.label}:` : label;
            const setScenario = { ...scenario, strategies };
            const backend = await backends.create({
              accelerator: options.accelerator ?? 'auto',
              keepLogsIn: path.join(
                dir,
                'logs',
                `${sweepsGuests ? `g${guestCount}-` : ''}m${memoryMiB}-r${repetition}${sets.length > 1 ? `-${strategies[0]!.label}` : ''}`,
              ),
              onNotice: (message) => warnings.push(message),
            });
            try {
              backendInfo = backend.info();
              const guestRam = guestRamFor(strategies);
              say(
                `${setLabel} ${backend.replayTicks ? 'loading recorded' : 'booting'} ${guestCount} × ${kernels} (${backendInfo.accelerator}, ${scenario.kaslr ? 'KASLR on' : 'nokaslr'}, workload ${scenario.workload.name}${guestRam === 'anonymous-mergeable' ? ', anonymous mergeable RAM' : ''})`,
              );
              const provisionStartedAt = Date.now();
              const guests = await backend.provision(image, guestCount, {
                memoryMiB,
                kaslr: scenario.kaslr,
                workload: scenario.workload,
                guestRam,
                ...(scenario.cpuModels ? { cpuModels: scenario.cpuModels } : {}),
                ...(guestImages ? { guestImages } : {}),
              });
              say(
                `${setLabel} booted in ${(Math.max(...guests.map((g) => g.bootMs)) / 1000).toFixed(1)} s; scoring ${strategies.map((s) => s.label).join(', ')} every ${scenario.tickS} s for ${scenario.durationS} s`,
              );
              const start = { memoryMiB, repetition, guests, backend: backendInfo };
              const observers = writers.flatMap((writer) => writer.repetition?.(start) ?? []);
              const metrics = await runRepetition({
                scenario: setScenario,
                backend,
                guests,
                image,
                kernel,
                hasher,
                memoryMiB,
                repetition,
                provisionStartedAt,
                stopRequested,
                emit: (sample) => {
                  for (const writer of writers) writer.sample?.(sample);
                },
                say: (line) => say(`${setLabel} ${line}`),
                note: (text) => notes.add(text),
                warn: (text) => warnings.push(text),
                tickObserver: combinedObserver(observers),
                ...(options.cowFaultCosts ? { cowFaultCosts: options.cowFaultCosts } : {}),
                ...(scenario.attributeClasses ? { classifyForAttribution: true } : {}),
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
  } catch (error) {
    warnings.push(`run failed: ${errorMessage(error)}`);
    await prepareEnd();
    finish('failed');
    throw error;
  } finally {
    unregister();
  }
  return { runId, dir, status, summary, overhead, repetitions, warnings };
}
