/**
 * The tick loop of one repetition, on guests already booted: every tick, pause the guests, and for every
 * strategy (in a rotated order) detect CoW faults on what its ledger shared before, scan, and let the ledger
 * verify and apply; each step's CPU is this thread's (util/thread-cpu.ts). Each measurement leaves as a
 * TickSample the moment it is taken; at the end, the repetition's figures per strategy. It writes nothing
 * itself, so that it runs on stand-ins in unit tests (tick-loop.test.ts, harness/testing/fake-backend.ts).
 */
import { XmeError } from '../util/errors.ts';
import type { Backend, Guest } from '../backends/types.ts';
import type { WorkloadProgress } from '../vocabulary.ts';
import type { GuestImage } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import type { PageHasher } from '../hashing/page-hasher.ts';
import { cowModelCpuMs, type CowFaultCosts, type Ledger } from '../sharing/ledger.ts';
import { ledgerFor } from '../sharing/ledger-for-backend.ts';
import { measureThreadCpu, THREAD_CPU_METHOD } from '../util/thread-cpu.ts';
import { createStrategy } from '../../strategies/registry.ts';
import type { ScanResult, Strategy, StrategyContext, TickPageClasses } from '../../strategies/types.ts';
import { TickPageClassifier, type PageClassSource } from './tick-page-classes.ts';
import { REFERENCE_STRATEGY, TickAttributor, type ScoredTrack } from './tick-attribution.ts';
import type { Scenario } from '../scenario/scenario.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import type { SampleOrigin, StrategySample, TickSample } from '../results/tick-sample.ts';
import { checkDeclarations, repetitionMetrics, undeclaredMetrics, type StrategyRecord } from './repetition-metrics.ts';
import type { TickObserver } from '../results/result-writer.ts';
import { PeakMemory } from '../util/process-memory.ts';

export interface RepetitionInput {
  scenario: Scenario;
  /** For the ledgers: an enforcing backend shares for real (ledger-for-backend.ts). */
  backend: Pick<Backend, 'enforcesSharing' | 'share' | 'counters' | 'replayTicks'>;
  guests: readonly Guest[];
  image: GuestImage;
  kernel: KernelInfo;
  hasher: PageHasher;
  memoryMiB: number;
  repetition: number;
  /** Every sample, as soon as it is measured, in scoring order. */
  emit: (sample: TickSample) => void;
  /** Progress for a person. */
  say: (line: string) => void;
  /** Something worth recording once in run.json (duplicates are the caller's to drop). */
  note: (text: string) => void;
  warn: (text: string) => void;
  /** Told about each ledger made, so that run.json says how sharing and CoW were measured. */
  onLedger: (ledger: Ledger) => void;
  /** Asked before every tick and while waiting for one: true ends the repetition early. */
  stopRequested: () => boolean;
  /** `xme run --record`: told about every scored tick while the guests are still paused (harness/recording/). */
  tickObserver?: TickObserver;
  /** Per-fault CoW costs measured on this host, by model (sharing/ledger.ts CowFaultModel); absent: cow_model_cpu_ms stays empty. */
  cowFaultCosts?: CowFaultCosts;
  /** Where page classes come from for strategies that read them (default: each guest's kernel, tick-page-classes.ts). */
  pageClassSource?: PageClassSource;
  /** When provisioning of these guests began (Date.now()): first_result_s runs from there. */
  provisionStartedAt?: number;
  /**
   * Classify every tick even when no strategy reads page classes, for attribution only (where sharing comes
   * from, experiment/tick-attribution.ts): that classification is then billed to the instrument, not to any strategy.
   */
  classifyForAttribution?: boolean;
}

interface StrategyTrack {
  label: string;
  name: string;
  strategy: Strategy;
  ledger: Ledger;
  scanCpu: number[];
  cowCpu: number[];
  verifyCpu: number[];
  /** CoW detection + scan + verification/apply of one tick: what the strategy costs per tick. */
  tickCpu: number[];
  /** The same tick split: the mechanism's CPU (with the modelled CoW handling), the modelled CoW part, the instrument's. */
  mechanismCpu: number[];
  cowModelCpu: number[];
  instrumentCpu: number[];
  refusedScans: number;
  lastScan?: ScanResult;
  /** The mechanism's CPU method, where it is not the harness thread's (KSM). */
  cpuMethod?: string;
  /** Undeclared figures already warned about (once per repetition is enough). */
  undeclared: Set<string>;
  /** Per tick, the page classification billed to this strategy (only for strategies that read classes). */
  classifyCpu: number[];
  /** Of it, per tick, the "guest changed" checks (billed to the instrument, not the mechanism). */
  classifyCheckCpu: number[];
  lastAttribution?: StrategyRecord['lastAttribution'];
  /** Warned that this ledger cannot reclaim free frames (once per repetition). */
  reclaimWarned?: boolean;
}

async function sleepUntil(deadline: number, stopRequested: () => boolean): Promise<void> {
  while (Date.now() < deadline && !stopRequested()) {
    await new Promise((resolve) => setTimeout(resolve, Math.min(250, deadline - Date.now())));
  }
}

/**
 * Workload ops/s of a guest since the progress line seen at the previous tick. Over host time where lines are
 * stamped on arrival (the consoles are watched): a paused guest's clock stops, the host's does not, so time a
 * guest lost to pauses lowers its throughput as it should. Over guest time otherwise.
 */
export class ThroughputMeter {
  private lastIndex = new Map<Guest, number>();

  sample(guest: Guest): number | undefined {
    const progress = guest.console?.progress() ?? [];
    const previous = this.lastIndex.get(guest);
    this.lastIndex.set(guest, progress.length - 1);
    if (previous === undefined || previous < 0 || progress.length - 1 <= previous) return undefined;
    return opsPerSecond(progress[previous]!, progress.at(-1)!);
  }
}

/** Throughput between two progress lines: host time when both carry it, guest time otherwise. */
export function opsPerSecond(from: WorkloadProgress, to: WorkloadProgress): number | undefined {
  const hostSpan = from.hostMs !== undefined && to.hostMs !== undefined ? to.hostMs - from.hostMs : undefined;
  const span = hostSpan ?? to.tMs - from.tMs;
  return span > 0 ? ((to.ops - from.ops) * 1000) / span : undefined;
}

/**
 * Strategies score in a different order every tick (rotated), so that no strategy always runs right after
 * the same other one (and so inherits its cache state or its garbage).
 */
export function strategyOrder<T>(tracks: readonly T[], tick: number): T[] {
  const shift = tick % Math.max(1, tracks.length);
  return [...tracks.slice(shift), ...tracks.slice(0, shift)];
}

function countResident(map: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < map.length; i++) count += map[i]!;
  return count;
}

/** The tick loop of one repetition; returns per-strategy metrics, or undefined if stopped before a tick. */
export async function runRepetition(input: RepetitionInput): Promise<RepetitionMetrics[] | undefined> {
  const { scenario, guests } = input;
  const tracks: StrategyTrack[] = scenario.strategies.map((spec) => {
    const strategy = createStrategy(spec.name, spec.options);
    // A mechanism outside xme (KSM) brings its observer; enforcing backends (Xen) really share; elsewhere
    // the ledger accounts what would be shared.
    const ledger = strategy.createLedger?.(spec.label, guests) ?? ledgerFor(input.backend, spec.label, guests, input.hasher);
    checkDeclarations(`strategy ${spec.name}`, strategy.declaredMetrics);
    checkDeclarations(`the ${ledger.mode} ledger`, ledger.declaredMetrics);
    input.onLedger(ledger);
    return {
      label: spec.label,
      name: spec.name,
      strategy,
      ledger,
      scanCpu: [],
      cowCpu: [],
      verifyCpu: [],
      tickCpu: [],
      mechanismCpu: [],
      cowModelCpu: [],
      instrumentCpu: [],
      refusedScans: 0,
      undeclared: new Set(),
      classifyCpu: [],
      classifyCheckCpu: [],
    };
  });
  try {
    for (const track of tracks)
      await track.strategy.begin?.({ guests, note: input.note, notice: (text) => (input.warn(text), input.say(`notice: ${text}`)), say: input.say });
    return await tickLoop(tracks, input);
  } finally {
    for (const track of tracks) {
      await track.strategy.end?.();
      track.ledger.close?.();
    }
  }
}

async function tickLoop(tracks: StrategyTrack[], input: RepetitionInput): Promise<RepetitionMetrics[] | undefined> {
  const { scenario, guests, stopRequested } = input;
  const baseContext = { guests, image: input.image, kernel: input.kernel, hasher: input.hasher };
  const meter = new ThroughputMeter();
  // Page classes, taken once per tick for the strategies that read them (tick-page-classes.ts).
  const classesRead = tracks.some((t) => t.strategy.readsPageClasses);
  const classSource = classesRead || input.classifyForAttribution ? (input.pageClassSource ?? new TickPageClassifier(input.kernel)) : undefined;
  const attributor = new TickAttributor(input.warn);
  // A replayed recording dictates its ticks and their times: no warm-up, no clock (harness/recording/).
  const replay = input.backend.replayTicks?.(guests);
  if (scenario.warmupS > 0 && !replay) {
    input.say(`warming up for ${scenario.warmupS} s before the first scan`);
    await sleepUntil(Date.now() + scenario.warmupS * 1000, stopRequested);
  }
  const opsPerSecond: number[] = [];
  const totalPages = guests.reduce((sum, g) => sum + g.memoryPages, 0);
  const t0 = Date.now();
  let lastTickS = 0;
  const ticks = Math.floor(scenario.durationS / scenario.tickS + 1e-9);
  const schedule = replay ? replay.ticks.map((t) => t.tick) : Array.from({ length: ticks + 1 }, (_, i) => i);

  let delayed = 0;
  let previousEnd = 0;
  let firstResultAt: number | undefined;
  const harnessMemory = new PeakMemory();
  for (const [index, tick] of schedule.entries()) {
    if (replay) {
      if (stopRequested()) break;
      replay.enter(index);
    } else {
      // The guests run at least half a tick between two scorings: when scoring takes longer than a tick (a slow
      // host), the next tick waits rather than pausing the guests again at once, which would leave them no time
      // to run and the run nothing to measure. The run then lasts longer than durationS; t_s says when.
      const scheduled = t0 + tick * scenario.tickS * 1000;
      const earliest = tick > 0 ? previousEnd + (scenario.tickS * 1000) / 2 : scheduled;
      // Late by a second or a quarter tick is worth a warning; less is jitter of a busy host.
      if (earliest > scheduled + Math.max(1000, scenario.tickS * 250)) delayed++;
      await sleepUntil(Math.max(scheduled, earliest), stopRequested);
      if (stopRequested()) break;
    }
    const dead = guests.find((g) => !g.alive());
    if (dead) throw new XmeError(`guest ${dead.id} stopped during the run`, `its serial log is kept in the results' logs/ folder`);
    const throughput = guests.map((g) => meter.sample(g));
    for (const value of throughput) if (value !== undefined) opsPerSecond.push(value);
    if (scenario.pauseDuringScan) await Promise.all(guests.map((g) => g.pause()));
    const tS = replay ? replay.ticks[index]!.tS : (Date.now() - t0) / 1000;
    lastTickS = tS;
    const totals = new Map<StrategyTrack, StrategySample>();
    try {
      // Which pages the host really backs (QEMU: allocated in the RAM file); read once per tick, same for all.
      // Nobody reads a hole (resident-pages.ts), so this snapshot stays true while guests are paused. Its CPU
      // is the instrument's (a hypervisor knows what it backs), shown on every strategy's row.
      const snapshot = await measureThreadCpu(() => guests.map((g) => g.hostResidency?.residentPages()));
      const residency = snapshot.value;
      // Guest RAM that can only be read by copying (KSM runs) is copied once here, for every strategy alike,
      // and its cost is recorded apart: no strategy pays for how the harness reaches memory.
      const copy =
        tracks.some((t) => t.strategy.readsGuestMemory !== false) || input.tickObserver
          ? await measureThreadCpu(() => guests.forEach((g, i) => g.tickCopy?.copyForTick(residency[i])))
          : undefined;
      // After the copy (a guest that copies serves its pages from it), before any strategy scores.
      const classified = classSource ? await measureThreadCpu(() => classSource.classify(guests, scenario.pauseDuringScan)) : undefined;
      for (const note of classSource?.takeNotes() ?? []) input.note(`${note} (${input.memoryMiB} MiB, rep ${input.repetition})`);
      const pageClasses: TickPageClasses | undefined = classified && {
        ...classified.value,
        cpuMs: classified.cpuMs,
        checkCpuMs: 'guests' in classified.value ? classified.value.guests.reduce((sum, c) => sum + c.checkCpuMs, 0) : 0,
      };
      const context = {
        ...baseContext,
        residency,
        pageClasses,
        memoryCopyCpuMs: guests.some((g) => g.tickCopy) ? copy?.cpuMs : undefined,
        residencyCpuMs: guests.some((g) => g.hostResidency) ? snapshot.cpuMs : undefined,
      };
      const scored: (ScoredTrack & { track: StrategyTrack })[] = [];
      for (const track of strategyOrder(tracks, tick)) {
        const samples = await scoreTick(track, tick, tS, context, throughput, input);
        totals.set(track, samples[0]);
        scored.push({ track, label: track.label, name: track.name, ledger: track.ledger, samples });
        if (track.lastScan?.refused && tick === 0) input.say(`${track.label} refused: ${track.lastScan.refused}`);
      }
      // Where sharing comes from, once every strategy has scored: the instrument's (tick-attribution.ts).
      if (pageClasses && pageClasses.refused === undefined) {
        const cpuMs = attributor.apply(tick, scored, guests, pageClasses.guests, classesRead ? 0 : pageClasses.cpuMs);
        const content = scored.find((s) => s.name === REFERENCE_STRATEGY)?.samples[0];
        for (const { track, samples } of scored) {
          track.instrumentCpu[track.instrumentCpu.length - 1]! += cpuMs;
          const [total] = samples;
          if (total.savedByClass || total.contentSavedFound !== undefined) {
            track.lastAttribution = { savedByClass: total.savedByClass, contentSavedFound: total.contentSavedFound, contentFramesSaved: content?.framesSaved };
          }
        }
      }
      for (const { samples } of scored) for (const sample of samples) input.emit(sample);
      // After every strategy, so that recording costs none of them CPU or cache; the guests are still paused.
      await input.tickObserver?.afterTick(tick, tS, guests, residency);
    } finally {
      for (const guest of guests) guest.tickCopy?.dropTickCopy();
      if (scenario.pauseDuringScan) await Promise.all(guests.filter((g) => g.alive()).map((g) => g.resume()));
    }
    previousEnd = Date.now();
    firstResultAt ??= previousEnd;
    harnessMemory.sample();
    input.say(`t=${tS.toFixed(0)}s  ${tracks.map((t) => progressOf(totals.get(t))).join(' | ')}`);
  }

  if (delayed > 0) {
    input.warn(
      `${delayed} tick(s) of ${input.memoryMiB} MiB, repetition ${input.repetition} came late (by more than a second): scoring took longer than half a tick (${scenario.tickS} s) on this host, and the guests run at least half a tick between scorings`,
    );
  }
  if (tracks.every((t) => t.scanCpu.length === 0)) return undefined;
  const records = tracks.map(
    (track): StrategyRecord => ({
      label: track.label,
      name: track.name,
      scanCpu: track.scanCpu,
      cowCpu: track.cowCpu,
      verifyCpu: track.verifyCpu,
      tickCpu: track.tickCpu,
      mechanismCpu: track.mechanismCpu,
      cowModelCpu: track.cowModelCpu,
      instrumentCpu: track.instrumentCpu,
      classifyCpu: track.classifyCpu,
      classifyCheckCpu: track.classifyCheckCpu,
      ...(track.lastAttribution ? { lastAttribution: track.lastAttribution } : {}),
      refusedScans: track.refusedScans,
      stats: track.ledger.stats(),
      cowMethodDescription: track.ledger.cowMethodDescription,
      lastScanMetrics: track.lastScan?.metrics,
      ledgerMetrics: track.ledger.extraMetrics(),
      declared: { ...track.strategy.declaredMetrics, ...track.ledger.declaredMetrics },
      ...(track.cpuMethod ? { cpuMethod: track.cpuMethod } : {}),
    }),
  );
  return repetitionMetrics(records, {
    guests: input.guests.length,
    memoryMiB: input.memoryMiB,
    repetition: input.repetition,
    totalPages,
    spanS: lastTickS,
    opsPerSecond,
    bootS: Math.max(...guests.map((g) => g.bootMs)) / 1000,
    ...(input.provisionStartedAt !== undefined && firstResultAt !== undefined && !replay
      ? { firstResultS: (firstResultAt - input.provisionStartedAt) / 1000 }
      : {}),
    ...(harnessMemory.value ? { harnessMemoryMiB: harnessMemory.value.anonMiB } : {}),
  });
}

/** What strategies see at one tick; residency is always taken (undefined per guest where unknown). */
type TickContext = StrategyContext & {
  residency: (Uint8Array | undefined)[];
  memoryCopyCpuMs: number | undefined;
  /** The residency snapshot's CPU (undefined where no guest reports residency). */
  residencyCpuMs: number | undefined;
};

/** One strategy at one tick: CoW detection, scan, verified apply; its total and per-guest samples. */
async function scoreTick(
  track: StrategyTrack,
  tick: number,
  tS: number,
  context: TickContext,
  throughput: (number | undefined)[],
  input: RepetitionInput,
): Promise<[StrategySample, ...TickSample[]]> {
  const { guests, residency } = context;
  track.ledger.setHostResidency?.(residency);
  const statsBefore = track.ledger.stats();
  const faultsBefore = statsBefore.cowFaults;
  // CPU of this thread only (harness/util/thread-cpu.ts): every call below runs on it.
  const cow = await measureThreadCpu(() => (tick > 0 ? track.ledger.detectCow() : []));
  const cowEvents = cow.value;
  // Page classes only to the strategies that read them, which are billed the classification (tick-page-classes.ts).
  const classes = track.strategy.readsPageClasses ? context.pageClasses : undefined;
  // What the strategy's own ledger knows of its shared pages (the accounted ledger, after this tick's detectCow).
  const sameFrame = track.ledger.sameFrame?.bind(track.ledger);
  const frameIds = track.ledger.sharedFrameIds?.();
  const strategyContext: StrategyContext = {
    ...context,
    pageClasses: classes,
    ...(sameFrame ? { sharedOnOneFrame: sameFrame } : {}),
    ...(frameIds ? { sharedFrameIds: frameIds } : {}),
  };
  const scanned = await measureThreadCpu(() => track.strategy.scan(strategyContext));
  const scan = scanned.value;
  track.lastScan = scan;
  for (const note of scan.notes) input.note(`${track.label} (${input.memoryMiB} MiB, rep ${input.repetition}): ${note}`);
  // Free frames are reclaimed before apply, which then refuses a reclaimed frame (sharing/ledger.ts, "FREE PAGES RECLAIMED").
  const verified = await measureThreadCpu(async () => {
    await reclaimFree(track, scan, input);
    return track.ledger.apply(scan.groups);
  });
  const applied = verified.value;
  // What only the ledger's byte comparison can tell the strategy (e.g. how often its key proposed differing bytes).
  const judged = await measureThreadCpu(() => track.strategy.afterApply?.(applied));
  if (judged.value) track.lastScan = { ...scan, metrics: { ...scan.metrics, ...judged.value } };
  const classifyCpuMs = classes?.cpuMs;
  if (classifyCpuMs !== undefined) track.classifyCpu.push(classifyCpuMs);
  // Of the classification, the "guest changed" checks: xme's proof that its pause held, the instrument's.
  const classifyCheckCpuMs = classes ? (classes.checkCpuMs ?? 0) : undefined;
  if (classifyCheckCpuMs !== undefined) track.classifyCheckCpu.push(classifyCheckCpuMs);
  // The strategy's own work: its scan (with its worker threads' CPU, which this thread's clock does not see:
  // content's pass, harness/hashing/parallel-scan.ts), the classification it needs, its reading of the ledger's verdict.
  const strategyCpuMs = scanned.cpuMs + (scan.threads?.workerCpuMs ?? 0) + (classifyCpuMs ?? 0) + (judged.value ? judged.cpuMs : 0);
  const threadCpuMs = (tick > 0 ? cow.cpuMs : 0) + strategyCpuMs + verified.cpuMs;
  // Sharing done outside the harness (ksmd) costs what that mechanism spent; the harness thread only observed.
  const mechanism = track.ledger.mechanismCpu?.();
  if (mechanism) track.cpuMethod = mechanism.method;
  const scanCpuMs = mechanism ? mechanism.cpuMs : strategyCpuMs;
  const verifyCpuMs = mechanism ? 0 : verified.cpuMs;
  const cowCpuMs = tick > 0 ? (mechanism ? 0 : cow.cpuMs) : undefined;
  const tickCpuMs = mechanism ? mechanism.cpuMs : threadCpuMs;
  // Mechanism and instrument (sharing/ledger.ts, "COST: MECHANISM AND INSTRUMENT"). On the harness thread the
  // scan and the apply are the mechanism's, less what the ledger says was observation inside apply (the
  // enforced ledger's re-read and counter reads); CoW detection is the instrument's. The CoW handling a real
  // host pays per fault is added to the mechanism as faults × the measured per-fault cost.
  // So is the classification's "guest changed" check, inside the scan.
  const applyInstrumentMs = mechanism ? 0 : (track.ledger.applyInstrumentCpuMs?.() ?? 0);
  const checkInstrumentMs = mechanism ? 0 : (classifyCheckCpuMs ?? 0);
  const observedMs = mechanism ? threadCpuMs : (tick > 0 ? cow.cpuMs : 0) + applyInstrumentMs + checkInstrumentMs;
  const perFault = input.cowFaultCosts?.[track.ledger.cowFaultModel];
  const stats = track.ledger.stats();
  const faultsTick = stats.cowFaults - faultsBefore;
  const cowModelMs = perFault?.status === 'measured' ? cowModelCpuMs(faultsTick, perFault) : undefined;
  const mechanismCpuMs = (mechanism ? mechanism.cpuMs : strategyCpuMs + verified.cpuMs - applyInstrumentMs - checkInstrumentMs) + (cowModelMs ?? 0);
  const instrumentCpuMs = observedMs + (context.residencyCpuMs ?? 0) + (context.memoryCopyCpuMs ?? 0);
  if (cowCpuMs !== undefined) track.cowCpu.push(cowCpuMs);
  track.scanCpu.push(scanCpuMs);
  track.verifyCpu.push(verifyCpuMs);
  track.tickCpu.push(tickCpuMs);
  track.mechanismCpu.push(mechanismCpuMs);
  if (cowModelMs !== undefined) track.cowModelCpu.push(cowModelMs);
  track.instrumentCpu.push(instrumentCpuMs);
  if (scan.refused) track.refusedScans++;

  const metrics = { ...track.lastScan.metrics, ...track.ledger.extraMetrics() };
  const declared = { ...track.strategy.declaredMetrics, ...track.ledger.declaredMetrics };
  for (const name of undeclaredMetrics(metrics, declared)) {
    if (track.undeclared.has(name)) continue;
    track.undeclared.add(name);
    input.warn(
      `${track.label} reports a figure '${name}' it does not declare: kept in samples.csv (strategy_metrics), left out of summary.csv (no unit or method)`,
    );
  }
  const origin: SampleOrigin = {
    guests: input.guests.length,
    memoryMiB: input.memoryMiB,
    repetition: input.repetition,
    tick,
    tS,
    strategy: track.label,
    sharingMode: track.ledger.mode,
    cowMethod: track.ledger.cowMethod,
    cowCount: track.ledger.cowCount,
    status: scan.refused ? `refused: ${scan.refused}` : 'ok',
  };
  const perGuestCow = guests.map(() => 0);
  for (const event of cowEvents) perGuestCow[event.guest]!++;
  const total: StrategySample = {
    ...origin,
    scope: 'all',
    guestPages: guests.reduce((sum, g) => sum + g.memoryPages, 0),
    sharedPages: stats.sharedPages,
    framesSaved: stats.framesSaved,
    hostFramesSaved: stats.hostFramesSaved,
    framesSavedZero: stats.savedWhere?.zero,
    framesSavedWithinGuest: stats.savedWhere?.withinGuest,
    framesSavedAcrossGuests: stats.savedWhere?.acrossGuests,
    hostResidentPages: residency.every((map) => map !== undefined) ? residency.reduce((sum, map) => sum + countResident(map!), 0) : undefined,
    zeroPagesShared: stats.zeroPagesShared,
    // From the ledger's total, not the events: a kernel count (KSM) has faults no event names.
    cowFaultsTick: faultsTick,
    cowFaultsTotal: stats.cowFaults,
    cowCopiesTotal: stats.cowCopies,
    // Reclaimed free frames, apart from every shared figure above (sharing/ledger.ts, "FREE PAGES RECLAIMED").
    ...(stats.reclaimedFree !== undefined
      ? {
          reclaimedFreePages: stats.reclaimedFree,
          hostReclaimedFreePages: stats.hostReclaimedFree,
          reclaimFaultsTick: (stats.reclaimFaults ?? 0) - (statsBefore.reclaimFaults ?? 0),
          reclaimFaultsTotal: stats.reclaimFaults ?? 0,
        }
      : {}),
    cost: {
      cpuMethod: mechanism?.method ?? THREAD_CPU_METHOD,
      scanCpuMs,
      scanWallMs: scanned.wallMs,
      verifyCpuMs,
      cowCpuMs,
      tickCpuMs,
      observerCpuMs: mechanism ? threadCpuMs : undefined,
      memoryCopyCpuMs: context.memoryCopyCpuMs,
      mechanismCpuMs,
      cowModelCpuMs: cowModelMs,
      instrumentCpuMs,
      residencyCpuMs: context.residencyCpuMs,
      ...(classifyCpuMs !== undefined ? { classifyCpuMs } : {}),
      ...(classifyCheckCpuMs !== undefined ? { classifyCheckCpuMs } : {}),
      pagesRead: scan.cost.pagesRead,
      bytesHashed: scan.cost.bytesHashed,
      bytesCompared: scan.cost.bytesCompared + applied.bytesCompared,
    },
    refusedPages: applied.refused.reduce((sum, r) => sum + r.pages.length, 0),
    metrics,
  };
  const perGuest = guests.map((guest, g): TickSample => {
    const map = residency[g];
    return {
      ...origin,
      scope: 'guest',
      guest: guest.id,
      guestPages: guest.memoryPages,
      sharedPages: stats.perGuest[g]!.sharedPages,
      hostResidentPages: map ? countResident(map) : undefined,
      cowFaultsTick: perGuestCow[g]!,
      cowFaultsTotal: stats.perGuest[g]!.cowFaults,
      workloadOpsPerS: throughput[g],
    };
  });
  return [total, ...perGuest];
}

/** A strategy's free frames to its ledger (sharing/ledger.ts, "FREE PAGES RECLAIMED"); a ledger that cannot reclaim drops them, once said. */
async function reclaimFree(track: StrategyTrack, scan: ScanResult, input: RepetitionInput): Promise<void> {
  if (!scan.freeFrames) return;
  if (track.ledger.reclaimFree) {
    await track.ledger.reclaimFree(scan.freeFrames);
    return;
  }
  if (track.reclaimWarned) return;
  track.reclaimWarned = true;
  input.warn(
    `${track.label} proposes free frames to reclaim, but the ${track.ledger.mode} ledger (${track.ledger.cowMethod}) reclaims none: they are not counted`,
  );
}

/** A strategy's part of the progress line of one tick. */
function progressOf(sample: StrategySample | undefined): string {
  if (!sample) return '';
  return sample.status === 'ok'
    ? `${sample.strategy}: ${sample.sharedPages} shared${sample.reclaimedFreePages !== undefined ? `, ${sample.reclaimedFreePages} free reclaimed` : ''}, ${sample.cowFaultsTotal} CoW, tick ${sample.cost.tickCpuMs.toFixed(1)} ms CPU`
    : `${sample.strategy}: REFUSED`;
}
