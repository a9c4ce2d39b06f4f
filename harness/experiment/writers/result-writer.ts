/**
 * The reporting seam: the runner measures, writers report (as hyperfine's exporters: one small interface,
 * each writer tested from recorded results without running anything). A writer is told once when the run
 * starts, then every sample as it is measured (so that an interrupted run keeps every row), then once when
 * the run ends, with everything else the run learnt. All calls are synchronous: end() also runs from the
 * process's exit handler on Ctrl-C, where nothing asynchronous completes.
 */
import type { BackendInfo } from '../../backends/types.ts';
import type { GuestImage } from '../../images/manifest.ts';
import type { KernelInfo } from '../../introspection/kernel-info.ts';
import type { Ledger } from '../../sharing/ledger.ts';
import type { RunOwner } from '../../util/process-identity.ts';
import type { HarnessInfo, HostInfo } from '../run-record.ts';
import type { Scenario } from '../scenario.ts';
import type { RepetitionMetrics, SummaryRow } from '../summary.ts';
import type { TickSample } from '../tick-sample.ts';

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
  warnings: string[];
  notes: string[];
}

export interface ResultWriter {
  begin?(run: RunHeader): void;
  sample?(sample: TickSample): void;
  /**
   * Asynchronous preparation for end() (e.g. loading code that begin() started to import), awaited by the
   * runner before it ends a run in the ordinary way; must not reject. The exit handler cannot wait for it:
   * end() then runs with whatever is ready.
   */
  prepareEnd?(): Promise<void>;
  /** Called once per run, whatever its ending. */
  end(run: RunEnd): void;
}
