/**
 * The reporting seam: the runner measures, writers report (as hyperfine's exporters: one small interface,
 * each writer tested from recorded results without running anything). The command line chooses the writers
 * (harness/cli/run-outputs.ts); the runner only calls them. All calls are synchronous: end() also runs from
 * the process's exit handler on Ctrl-C, where nothing asynchronous completes.
 */
import type { BackendInfo, Guest } from '../backends/types.ts';
import type { RunEnd, RunHeader } from './run.ts';
import type { RunRecord } from './run-record.ts';
import type { TickSample } from './tick-sample.ts';

/** A repetition's guests, booted: what a tick observer is made for. */
export interface RepetitionStart {
  memoryMiB: number;
  repetition: number;
  guests: readonly Guest[];
  backend: BackendInfo;
}

/** Called by the tick loop after every strategy scored a tick, guests still paused (e.g. the recorder). */
export interface TickObserver {
  afterTick(tick: number, tS: number, guests: readonly Guest[], residency: readonly (Uint8Array | undefined)[]): Promise<void>;
}

/**
 * A writer of one output of a run: told once when the run starts, then every sample as it is measured (so
 * that an interrupted run keeps every row), then once when the run ends. A writer that wants to see guest
 * memory at every tick (the recorder) returns a TickObserver per repetition.
 */
export interface ResultWriter {
  begin?(run: RunHeader): void;
  repetition?(start: RepetitionStart): TickObserver | undefined;
  sample?(sample: TickSample): void;
  /**
   * Asynchronous preparation for end() (e.g. loading code that begin() started to import), awaited by the
   * runner before it ends a run in the ordinary way; must not reject. The exit handler cannot wait for it:
   * end() then runs with whatever is ready.
   */
  prepareEnd?(): Promise<void>;
  /** Called once per run, whatever its ending: finish this writer's files. Returns warnings for run.json. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a writer with nothing to report declares end(): void
  end?(end: RunEnd): readonly string[] | void;
}

/**
 * An output made from the results folder's files once every ResultWriter has ended (they are complete then),
 * before run.json is sealed: the report. Its warnings (e.g. a report that could not be made) go to run.json.
 */
export interface FolderOutput {
  begin?(run: RunHeader): void;
  prepareEnd?(): Promise<void>;
  /** `record` is what run.json is about to say (the file still says 'running'). */
  make(dir: string, record: RunRecord): readonly string[];
}
