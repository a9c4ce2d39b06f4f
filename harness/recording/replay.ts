/**
 * `xme replay RECORDING`: score strategies on a recording with no VM and no hypervisor. This module turns a
 * recording into what the runner needs (scenario, backend, image, first repetition); the command line runs
 * it through the same runner and writers as a live run (harness/cli/run-outputs.ts), so that the CSVs
 * compare. The replayed scenario is the recorded one with the strategies asked for; every recorded
 * repetition is replayed, at its recorded ticks and times.
 */
import { createStrategy } from '../../strategies/registry.ts';
import { parseScenario, type Scenario } from '../scenario/scenario.ts';
import type { RunOptions } from '../experiment/runner.ts';
import type { ResultWriter } from '../results/result-writer.ts';
import { RecordingError, type RecordedSegment } from './format.ts';
import { openRecording, type Recording } from './recording.ts';
import { replayBackendFactory } from './replay-backend.ts';

export interface ReplayOptions extends Pick<RunOptions, 'resultsRoot' | 'onProgress' | 'argv' | 'stopRequested'> {
  /** Writers besides the standard ones (e.g. the console table). */
  writers?: ResultWriter[];
  /** A recording folder, or a run's results folder with a recording/ inside. */
  recording: string;
  /** Strategy names to score (default: the recorded run's). */
  strategies?: string[];
}

/** The recorded repetitions that hold at least one tick, in recorded order, as a full grid of memory × repetition. */
function replayableSegments(
  recording: Recording,
  say: (line: string) => void,
): { segments: RecordedSegment[]; memoryMiB: number[]; repetitions: number; firstRepetition: number } {
  const withTicks = recording.manifest.segments.filter((s) => s.ticks.length > 0);
  if (withTicks.length === 0)
    throw new RecordingError(`recording ${recording.dir} holds no recorded tick (status ${recording.manifest.status})`, 'nothing to replay');
  const memoryMiB = [...new Set(withTicks.map((s) => s.memoryMiB))];
  const perSize = memoryMiB.map((size) => withTicks.filter((s) => s.memoryMiB === size));
  const repetitions = Math.min(...perSize.map((list) => list.length));
  const firstRepetition = withTicks[0]!.repetition;
  const segments = perSize.flatMap((list) => list.slice(0, repetitions));
  for (const [i, segment] of segments.entries()) {
    if (segment.repetition !== firstRepetition + (i % repetitions)) {
      throw new RecordingError(
        `recording ${recording.dir}: segment ${segment.id} is out of order (expected repetition ${firstRepetition + (i % repetitions)})`,
      );
    }
  }
  const dropped = withTicks.length - segments.length;
  if (dropped > 0)
    say(`notice: ${dropped} recorded repetition(s) left out: every memory size is replayed with the same number of repetitions (${repetitions})`);
  if (recording.manifest.status !== 'completed')
    say(
      `notice: the recorded run ended '${recording.manifest.status}'; its ${withTicks.reduce((n, s) => n + s.ticks.length, 0)} complete recorded tick(s) are replayed`,
    );
  return { segments, memoryMiB, repetitions, firstRepetition };
}

/** The recorded scenario, with these strategies, over the replayable repetitions. */
function replayScenario(recording: Recording, strategies: string[] | undefined, grid: { memoryMiB: number[]; repetitions: number }): Scenario {
  const recorded = recording.manifest.scenario;
  const parsed = parseScenario(
    {
      ...recorded,
      // Replayed sharing is accounted (nothing is enforced on a recording), so the one-strategy rule of an
      // enforcing backend does not apply; the recorded backend goes back in below, for run.json.
      backend: 'qemu',
      strategies: strategies ?? recorded.strategies,
      strategyGuests: 'together',
      baseline: undefined,
      systemMap: undefined,
      memoryMiB: grid.memoryMiB,
      repetitions: grid.repetitions,
    },
    String(recorded.name ?? 'replay'),
    recording.dir,
  );
  for (const spec of parsed.strategies) {
    const strategy = createStrategy(spec.name, spec.options);
    if (strategy.createLedger || strategy.guestRam) {
      throw new RecordingError(
        `strategy ${spec.label} cannot score a recording: it is a mechanism of the live host (${strategy.describe()}), not a reading of guest memory`,
        'replay memory-reading strategies (semantic, content, …)',
      );
    }
  }
  return { ...parsed, backend: recorded.backend === 'xen' ? 'xen' : 'qemu' };
}

/** What the runner needs to score a recording: the recorded scenario with these strategies, and the recording as its backend. */
export type ReplayPlan = Pick<RunOptions, 'scenario' | 'backendFactory' | 'image' | 'firstRepetition'>;

export function prepareReplay(options: Pick<ReplayOptions, 'recording' | 'strategies' | 'onProgress'>): Required<ReplayPlan> {
  const say = options.onProgress ?? (() => undefined);
  const recording = openRecording(options.recording);
  say(`recording ${recording.dir}: run ${recording.manifest.runId}, ${recording.manifest.segments.length} repetition(s), every file checked (size, sha256)`);
  const grid = replayableSegments(recording, say);
  return {
    scenario: replayScenario(recording, options.strategies, grid),
    backendFactory: replayBackendFactory(recording, grid.segments),
    image: { image: recording.image, kernel: recording.kernel },
    firstRepetition: grid.firstRepetition,
  };
}
