/**
 * The reporting seam: the runner measures, writers report (as hyperfine's exporters: one small interface,
 * each writer tested from recorded results without running anything). The command line chooses the writers
 * (harness/cli/run-outputs.ts); the runner only calls them. All calls are synchronous: end() also runs from
 * the process's exit handler on Ctrl-C, where nothing asynchronous completes.
 */
import type { BackendInfo } from '../backends/types.ts';
import type { GuestImage } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import type { Ledger } from '../sharing/ledger.ts';
import type { RunOwner } from '../util/process-identity.ts';
import type { Guest } from '../backends/types.ts';
import type { RunRecord } from './run-record.ts';
import type { SlowdownRow } from './overhead.ts';
import type { HarnessInfo, HostInfo } from './provenance.ts';
import type { Scenario } from '../scenario/scenario.ts';
import type { RepetitionMetrics, SummaryRow } from './summary.ts';
import type { TickSample } from './tick-sample.ts';

/** 'abandoned' is set by a later process that found the owner of a 'running' run gone (abandoned-runs.ts). */
export type RunStatus = 'running' | 'completed' | 'interrupted' | 'failed' | 'abandoned';

/** What is known when a run starts, before any guest boots. */
export interface RunHeader {
  runId: string;
  /** results/<run-id>/: the folder exists; writers put their files in it. */
  dir: string;
  scenario: Scenario;
  owner: RunOwner;
  startedAt: string;
  host: HostInfo;
  harness: HarnessInfo;
  argv: string[];
  image: GuestImage;
  kernel: KernelInfo;
  /** The System.map the run uses (the scenario's, else the image's). */
  systemMap: string;
  /** The page hasher's name (its library and version). */
  hasher: string;
}

/** How a run ended, and what it learnt along the way besides samples. */
export interface RunEnd {
  status: Exclude<RunStatus, 'running' | 'abandoned'>;
  endedAt: string;
  /** The last backend made; undefined if none was. */
  backend: BackendInfo | undefined;
  /** Of every ledger made (usually one mode and one method per run). */
  sharingModes: Ledger['mode'][];
  cowMethods: string[];
  repetitions: RepetitionMetrics[];
  /** Undefined when it could not be computed (then status is 'failed' and a warning says why). */
  summary: SummaryRow[] | undefined;
  /** overhead.csv's rows, where the scenario names a baseline (undefined otherwise). */
  overhead: SlowdownRow[] | undefined;
  /** Everything that went wrong or was noteworthy, in order (the writers' own come after, in run.json). */
  warnings: readonly string[];
  notes: readonly string[];
}

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
