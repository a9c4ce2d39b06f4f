/**
 * What the runner knows of a run, for its writers and its run.json: the header when it starts (before any
 * guest boots) and the ending with everything it learnt besides samples.
 */
import type { BackendInfo } from '../backends/types.ts';
import type { GuestImage } from '../images/manifest.ts';
import type { KernelInfo } from '../introspection/kernel-info.ts';
import type { CowFaultCosts, Ledger } from '../sharing/ledger.ts';
import type { Scenario } from '../scenario/scenario.ts';
import type { RunOwner } from '../util/process-identity.ts';
import type { SlowdownRow } from './overhead.ts';
import type { HarnessInfo, HostInfo } from './provenance.ts';
import type { RepetitionMetrics, SummaryRow } from './summary.ts';

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
  /** The per-fault CoW costs the tick loop models CoW handling with (run.json cowFaultCost); absent: none was given. */
  cowFaultCosts?: CowFaultCosts;
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
