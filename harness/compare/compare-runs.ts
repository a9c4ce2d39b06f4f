/**
 * `xme compare`: read results folders (summary.csv + run.json) and pair their rows by scenario × memory ×
 * strategy × metric, each run against the first (the baseline). Every row of either run is kept: a row found
 * in one run only is listed as missing in the other, never dropped. Means in different units are refused.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from '../util/errors.ts';
import { requireFolder, resolveRunDir } from '../results/run-folder.ts';
import { readRunRecord, type StoredRunRecord } from '../results/run-record.ts';
import { readSummary, type SummaryRow } from '../results/summary.ts';
import { differingSettings, type SettingDifference } from '../results/run-settings.ts';
import { judge, percentChange, type Judgement } from './welch.ts';

/** A results folder as `xme compare` reads it. */
export interface ResultsRun {
  dir: string;
  /** run.json runId (the folder's name when run.json has none) */
  runId: string;
  /** run.json scenario name */
  scenario: string;
  /** run.json status: 'completed', 'interrupted', 'failed', 'abandoned', 'running' */
  status: string;
  /** run.json as read: what the header compares (settings that differ between runs). */
  record: StoredRunRecord;
  rows: SummaryRow[];
}

export interface ComparedRow {
  /** The scenario of the row (with --ignore-scenario and different scenarios: "A's → B's"). */
  scenario: string;
  /** Guests scored together (undefined: a file from before the column). */
  guests: number | undefined;
  memoryMiB: number;
  strategy: string;
  metric: string;
  unit: string;
  /** The baseline's row; undefined: missing in the baseline. */
  a: SummaryRow | undefined;
  /** The compared run's row; undefined: missing in it. */
  b: SummaryRow | undefined;
  /** (B − A) / |A| × 100; undefined when a side is missing or A is 0 and B is not. */
  changePct: number | undefined;
  /** Welch's test at 95%; undefined when a side is missing. */
  judgement: Judgement | undefined;
}

/** One run (B) against the baseline (A). */
export interface Comparison {
  baseline: ResultsRun;
  run: ResultsRun;
  rows: ComparedRow[];
}

export interface CompareReport {
  runs: ResultsRun[];
  /** runs[1..] each against runs[0] */
  comparisons: Comparison[];
  /** Lines to show beside the numbers: runs not completed, scenarios that differ. */
  warnings: string[];
  /** Settings in which the runs differ (KASLR, image, guests, memory, workload, backend, …): not like for like. */
  differences: SettingDifference[];
}

export interface CompareOptions {
  /** Only these metrics (summary.csv metric names); all when absent or empty. */
  metrics?: readonly string[];
  /** Pair rows by memory × strategy × metric even when the runs are of different scenarios. */
  ignoreScenario?: boolean;
  /** Where a bare run id is looked up (results/<run-id>/): default none, the argument is a path. */
  resultsRoot?: string;
}

const RESULTS_HINT = 'give results folders written by xme run (results/<run-id>/, with summary.csv and run.json)';

/** Reads a results folder; a folder that is not one is a one-line XmeError naming the path and what is missing. */
export function readResultsRun(dir: string): ResultsRun {
  requireFolder(dir, RESULTS_HINT);
  const summaryFile = path.join(dir, 'summary.csv');
  const hasRunJson = fs.existsSync(path.join(dir, 'run.json'));
  const hasSummary = fs.existsSync(summaryFile);
  if (!hasRunJson && !hasSummary) throw new XmeError(`${dir} is not a results folder: it has no summary.csv and no run.json`, RESULTS_HINT);
  const record = readRunRecord(dir, RESULTS_HINT);
  if (!hasSummary) {
    throw new XmeError(
      `${dir} is not a complete results folder: it has no summary.csv (run.json says status '${record.status}')`,
      'summary.csv is written when a run ends; a run killed or still running has none',
    );
  }
  return { dir, runId: record.runId, scenario: record.scenarioName, status: record.status, record, rows: readSummary(summaryFile) };
}

/**
 * The guest count is part of the key only in a run that swept it: runs of 3 and of 16 guests compare row by
 * row (the header names the setting in which they differ), as do runs from before the column.
 */
function rowKey(row: SummaryRow, withScenario: boolean, sweepsGuests: boolean): string {
  return [withScenario ? row.scenario : '', sweepsGuests ? row.guests : '', row.memory_mib, row.strategy, row.metric].join('\u0000');
}

function indexRows(run: ResultsRun, withScenario: boolean): Map<string, SummaryRow> {
  const index = new Map<string, SummaryRow>();
  const sweepsGuests = new Set(run.rows.map((row) => row.guests)).size > 1;
  for (const row of run.rows) {
    const key = rowKey(row, withScenario, sweepsGuests);
    if (index.has(key)) {
      throw new XmeError(
        `${path.join(run.dir, 'summary.csv')} has two rows for ${withScenario ? `${row.scenario}, ` : ''}${sweepsGuests ? `${row.guests} guests, ` : ''}${row.memory_mib} MiB, ${row.strategy}, ${row.metric}`,
        withScenario ? 'summary.csv is written by xme run with one row each' : 'without --ignore-scenario the rows of different scenarios are told apart',
      );
    }
    index.set(key, row);
  }
  return index;
}

/**
 * Pairs B's rows with A's (the baseline) by scenario × memory × strategy × metric (without the scenario
 * when `ignoreScenario`). A's rows first in A's order, then the rows only B has. Refuses (XmeError) a metric
 * whose unit differs between the two runs.
 */
export function compareTwo(a: ResultsRun, b: ResultsRun, options: Pick<CompareOptions, 'ignoreScenario' | 'metrics'> = {}): Comparison {
  const keep = (row: SummaryRow) => !options.metrics?.length || options.metrics.includes(row.metric);
  const withScenario = !options.ignoreScenario;
  const aRows = { ...a, rows: a.rows.filter(keep) };
  const bRows = { ...b, rows: b.rows.filter(keep) };
  const aIndex = indexRows(aRows, withScenario);
  const bIndex = indexRows(bRows, withScenario);
  const rows: ComparedRow[] = [];
  for (const [key, rowA] of aIndex) {
    const rowB = bIndex.get(key);
    if (rowB && rowB.unit !== rowA.unit) {
      throw new XmeError(
        `metric '${rowA.metric}' is in '${rowA.unit}' in ${a.runId} but in '${rowB.unit}' in ${b.runId}: means in different units cannot be compared`,
        'compare runs written by the same xme version, or pick other metrics with --metric',
      );
    }
    rows.push(pairRow(rowA, rowB));
  }
  for (const [key, rowB] of bIndex) if (!aIndex.has(key)) rows.push(pairRow(undefined, rowB));
  return { baseline: a, run: b, rows };
}

function pairRow(a: SummaryRow | undefined, b: SummaryRow | undefined): ComparedRow {
  const some = (a ?? b)!;
  const scenario = a && b && a.scenario !== b.scenario ? `${a.scenario} → ${b.scenario}` : some.scenario;
  const both = a !== undefined && b !== undefined;
  return {
    scenario,
    guests: some.guests,
    memoryMiB: some.memory_mib,
    strategy: some.strategy,
    metric: some.metric,
    unit: some.unit,
    a,
    b,
    changePct: both ? percentChange(a.mean, b.mean) : undefined,
    judgement: both ? judge(a, b) : undefined,
  };
}

/**
 * Reads the results folders and compares each of the second and later against the first (the baseline).
 * Throws XmeError for a folder that is not a results folder, a unit mismatch, or a --metric no run has.
 */
export function compareRuns(dirs: readonly string[], options: CompareOptions = {}): CompareReport {
  if (dirs.length < 2) throw new XmeError(`compare needs at least two results folders, got ${dirs.length}`);
  const runs = dirs.map((dir) => readResultsRun(resolveRunDir(dir, options.resultsRoot)));
  const known = new Set(runs.flatMap((run) => run.rows.map((row) => row.metric)));
  for (const metric of options.metrics ?? []) {
    if (!known.has(metric)) throw new XmeError(`no run has a metric '${metric}'`, `the runs have: ${[...known].join(', ')}`);
  }
  const warnings: string[] = [];
  for (const run of runs) {
    if (run.status !== 'completed') {
      warnings.push(`run ${run.runId} is '${run.status}', not completed: its figures may cover fewer repetitions than planned (${run.dir})`);
    }
  }
  const baseline = runs[0]!;
  for (const run of runs.slice(1)) {
    if (run.scenario !== baseline.scenario) {
      warnings.push(
        options.ignoreScenario
          ? `run ${run.runId} is of scenario '${run.scenario}', the baseline of '${baseline.scenario}': rows paired by memory × strategy × metric (--ignore-scenario)`
          : `run ${run.runId} is of scenario '${run.scenario}', the baseline of '${baseline.scenario}': no row pairs; --ignore-scenario pairs them by memory × strategy × metric`,
      );
    }
  }
  const comparisons = runs.slice(1).map((run) => compareTwo(baseline, run, options));
  return { runs, comparisons, warnings, differences: differingSettings(runs.map((run) => run.record)) };
}
