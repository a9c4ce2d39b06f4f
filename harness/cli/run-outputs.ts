/**
 * The composition of a run, for every command that runs one (run, replay, each cell of a suite): the host's
 * housekeeping before it, the writers of its files, the report made from them, and the recorder when asked.
 * The runner (experiment/runner.ts) only calls what it is given; what a run writes is decided here, once.
 */
import { recoverAbandonedKsmState, takeKsmGuardReports } from '../host/ksm.ts';
import { hostCowBreakCost, type CowFaultCost } from '../host/cow-break.ts';
import type { CowFaultCosts } from '../sharing/ledger.ts';
import { XEN_UNSHARE_COST_SLOT } from '../sharing/enforced-ledger.ts';
import { markAbandonedRuns } from '../results/abandoned-runs.ts';
import { runExperiment, type RunOptions, type RunOutcome } from '../experiment/runner.ts';
import { ReportWriter } from '../report/report-writer.ts';
import { checkRecordable, RecordingWriter, type TickChoice } from '../recording/recorder.ts';
import { prepareReplay, type ReplayOptions } from '../recording/replay.ts';
import type { FolderOutput, ResultWriter } from '../results/result-writer.ts';
import { OverheadCsvWriter } from '../results/writers/overhead-csv.ts';
import { SamplesCsvWriter } from '../results/writers/samples-csv.ts';
import { SummaryCsvWriter } from '../results/writers/summary-csv.ts';

export interface RunWithOutputsOptions extends Omit<RunOptions, 'writers' | 'folderOutputs' | 'warnings' | 'cowFaultCosts'> {
  /** Writers besides samples.csv, summary.csv and overhead.csv (e.g. the console table, a suite's cell.json). */
  writers?: ResultWriter[];
  /** `xme run --record`: keep guest memory at these ticks in results/<run-id>/recording/ (harness/recording/). */
  record?: { ticks: TickChoice };
  /**
   * The per-fault cost of a Linux CoW fault, for cow_model_cpu_ms (harness/host/cow-break.ts): 'measure' — this
   * boot's cached measurement, else measured now (root and KSM) and cached; 'cached' — only a cached one; or
   * given. Default: 'measure' on the scenario's own QEMU backend, 'cached' where the backend is injected
   * (stand-ins, replays) or is Xen (whose unshare cost is a slot: XEN_UNSHARE_COST_SLOT).
   */
  cowFaultCost?: 'measure' | 'cached' | CowFaultCost;
}

export interface RunWithOutputsOutcome extends RunOutcome {
  /** With --record: one line saying what was kept and how to replay it. */
  recording?: string;
}

/**
 * What earlier, killed runs left behind, put right before a new run: results folders still saying 'running'
 * are marked 'abandoned'; what a killed KSM run's guard restored is reported, and KSM knobs left changed (a
 * guard that died with it) are restored. Returns the warnings for run.json.
 */
export function hostHousekeeping(resultsRoot: string, say: (line: string) => void): string[] {
  const warnings: string[] = [];
  const found = markAbandonedRuns(resultsRoot);
  for (const id of found.abandoned) say(`notice: run ${id} was left 'running' by a harness that is gone; marked 'abandoned' in its run.json`);
  for (const { runId, reason } of found.unreadable) say(`warning: results/${runId}/run.json could not be checked: ${reason}`);
  // A KSM guard that restored the settings of a killed run left a report: the first run after says so.
  for (const report of takeKsmGuardReports()) {
    say(`notice: ${report.warning}`);
    warnings.push(report.warning);
  }
  const restored = recoverAbandonedKsmState((message) => say(`notice: ${message}`));
  if (restored)
    warnings.push(
      `restored the host's KSM settings left by an earlier xme run that was killed: ${Object.entries(restored)
        .map(([k, v]) => `${k}=${v}`)
        .join(', ')}`,
    );
  return warnings;
}

/**
 * The per-fault costs of a run, by CoW model, and the warnings that say why one is missing where the run needs
 * it: cow_model_cpu_ms is then left empty, never filled with a constant.
 */
export async function cowFaultCostsFor(
  options: Pick<RunWithOutputsOptions, 'scenario' | 'backendFactory' | 'cowFaultCost'>,
  say: (line: string) => void,
): Promise<{ costs: CowFaultCosts; warnings: string[] }> {
  const qemu = options.scenario.backend === 'qemu';
  const choice = options.cowFaultCost ?? (qemu && !options.backendFactory ? 'measure' : 'cached');
  const linux = typeof choice === 'object' ? choice : await hostCowBreakCost({ measure: choice === 'measure', say });
  const warnings: string[] = [];
  const effect = 'cow_model_cpu_ms is empty and mechanism_cpu_ms leaves out the CoW handling';
  if (linux.status !== 'measured' && choice === 'measure')
    warnings.push(`the cost of a CoW fault could not be measured on this host (${linux.reason}): ${effect}`);
  if (options.scenario.backend === 'xen') warnings.push(`${XEN_UNSHARE_COST_SLOT.reason}: ${effect}`);
  for (const warning of warnings) say(`warning: ${warning}`);
  return { costs: { 'linux-ksm-cow-break': linux, 'xen-unshare': XEN_UNSHARE_COST_SLOT }, warnings };
}

/** The files every run writes (run.json aside, which the runner always writes) and the report made from them. */
export function standardOutputs(): { writers: ResultWriter[]; folderOutputs: FolderOutput[] } {
  return { writers: [new SamplesCsvWriter(), new SummaryCsvWriter(), new OverheadCsvWriter()], folderOutputs: [new ReportWriter()] };
}

/** A run with the standard outputs, the caller's writers and, when asked, a recording. */
export async function runWithOutputs(options: RunWithOutputsOptions): Promise<RunWithOutputsOutcome> {
  const { record, writers: extra = [], cowFaultCost, ...run } = options;
  if (record) checkRecordable(run.scenario);
  const say = run.onProgress ?? (() => undefined);
  const warnings = hostHousekeeping(run.resultsRoot, say);
  const cow = await cowFaultCostsFor({ ...run, ...(cowFaultCost ? { cowFaultCost } : {}) }, say);
  warnings.push(...cow.warnings);
  const standard = standardOutputs();
  const recording = record ? new RecordingWriter(record.ticks) : undefined;
  const outcome = await runExperiment({
    ...run,
    warnings,
    cowFaultCosts: cow.costs,
    writers: [...standard.writers, ...(recording ? [recording] : []), ...extra],
    folderOutputs: standard.folderOutputs,
  });
  const line = recording?.summaryLine();
  if (line) say(line);
  return { ...outcome, ...(line ? { recording: line } : {}) };
}

/** `xme replay`: the recorded scenario scored again through the same outputs as a live run. */
export async function replayRecording(options: ReplayOptions): Promise<RunOutcome> {
  const { recording, strategies, ...run } = options;
  return runWithOutputs({ ...run, ...prepareReplay({ recording, strategies, ...(run.onProgress ? { onProgress: run.onProgress } : {}) }) });
}
