/**
 * The results folders a report is drawn from: run.json (what ran), samples.csv (only the strategies' totals
 * per tick, the rows with guest "all") and summary.csv (means over repetitions, with unit and method).
 * Columns are read by name, so a folder written before a column existed (e.g. cow_count) still reads; a file
 * that is missing leaves its figures out of the report (figure-data.ts says why), it is not an error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { readSummaryCsv, requireFolder, type RunSummaryRow } from '../compare/compare-runs.ts';
import { XmeError } from '../util/errors.ts';

export type { RunSummaryRow };

/** What the report says about a run, from its run.json. */
export interface RunInfo {
  runId: string;
  /** completed, interrupted, failed, abandoned, running; 'unknown' when run.json does not say. */
  status: string;
  scenario: string;
  /** scenario.kaslr; undefined when run.json does not say. */
  kaslr: boolean | undefined;
  /** scenario.workload.name */
  workload: string | undefined;
  /** e.g. "qemu (QEMU 7.2.22, tcg)" */
  backend: string | undefined;
  sharingMode: string | undefined;
  /** run.json's description of the CoW method(s) */
  cowMethod: string | undefined;
  cpuMethod: string | undefined;
  startedAt: string | undefined;
  guests: number | undefined;
  kernel: string | undefined;
  gitCommit: string | undefined;
  /** run.json warnings (e.g. a repetition that failed, a figure left out of summary.csv) */
  warnings: string[];
}

/** One samples.csv row with guest "all": a strategy's totals over all guests at one tick. */
export interface TotalsSample {
  memoryMiB: number;
  repetition: number;
  tick: number;
  tS: number;
  strategy: string;
  sharingMode: string;
  cowMethod: string;
  /** 'lower bound' | 'upper bound' | 'host-wide' ('exact' in runs written before Xen's own reads were known to unshare); undefined in a samples.csv written before the column existed. */
  cowCount: string | undefined;
  cpuMethod: string | undefined;
  sharedPages: number | undefined;
  framesSaved: number | undefined;
  hostFramesSaved: number | undefined;
  cowFaultsTotal: number | undefined;
  status: string;
}

export interface ReportRun {
  dir: string;
  info: RunInfo;
  /** undefined: the folder has no samples.csv */
  samples: TotalsSample[] | undefined;
  /** undefined: the folder has no summary.csv (a run killed, or whose summary could not be made) */
  summary: RunSummaryRow[] | undefined;
}

const RESULTS_HINT = 'give results folders written by xme run (results/<run-id>/, with run.json, samples.csv, summary.csv)';

export interface ReadOptions {
  /**
   * run.json's content, when the caller has it and the file is not written yet (the ReportWriter at the end
   * of a run: its record is the one run.json is about to get).
   */
  record?: unknown;
}

/** Reads a results folder; a folder with neither run.json nor any CSV is an XmeError naming the path. */
export function readReportRun(dir: string, options: ReadOptions = {}): ReportRun {
  requireFolder(dir, RESULTS_HINT);
  const runJson = path.join(dir, 'run.json');
  const samplesCsv = path.join(dir, 'samples.csv');
  const summaryCsv = path.join(dir, 'summary.csv');
  let record = options.record;
  if (record === undefined) {
    if (!fs.existsSync(runJson)) throw new XmeError(`${dir} is not a results folder: it has no run.json`, RESULTS_HINT);
    try {
      record = JSON.parse(fs.readFileSync(runJson, 'utf8'));
    } catch (error) {
      throw new XmeError(`${runJson} is not readable JSON: ${(error as Error).message}`);
    }
  }
  return {
    dir,
    info: runInfo(record, path.basename(dir)),
    samples: fs.existsSync(samplesCsv) ? readTotals(samplesCsv) : undefined,
    summary: fs.existsSync(summaryCsv) ? readSummaryCsv(summaryCsv) : undefined,
  };
}

type Json = Record<string, unknown>;
const object = (value: unknown): Json => (typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : {});
const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The fields of a run.json the report shows; anything absent is undefined (older run.json files have fewer). */
export function runInfo(record: unknown, fallbackId: string): RunInfo {
  const json = object(record);
  const scenario = object(json.scenario);
  const backend = object(json.backend);
  const kernel = object(json.kernel);
  const backendText = text(backend.name)
    ? `${text(backend.name)}${[text(backend.version), text(backend.accelerator)].filter(Boolean).length ? ` (${[text(backend.version), text(backend.accelerator)].filter(Boolean).join(', ')})` : ''}`
    : undefined;
  return {
    runId: text(json.runId) ?? fallbackId,
    status: text(json.status) ?? 'unknown',
    scenario: text(scenario.name) ?? text(json.scenario) ?? 'unknown',
    kaslr: typeof scenario.kaslr === 'boolean' ? scenario.kaslr : undefined,
    workload: text(object(scenario.workload).name),
    backend: backendText,
    sharingMode: text(json.sharingMode),
    cowMethod: text(json.cowMethod),
    cpuMethod: text(json.cpuMethod),
    startedAt: text(json.startedAt),
    guests: typeof scenario.guests === 'number' ? scenario.guests : undefined,
    kernel: text(object(kernel.version).release) ?? text(object(json.image).kernelRelease),
    gitCommit: text(object(json.harness).gitCommit),
    warnings: Array.isArray(json.warnings) ? json.warnings.filter((w): w is string => typeof w === 'string') : [],
  };
}

const REQUIRED_SAMPLE_COLUMNS = ['memory_mib', 'repetition', 'tick', 't_s', 'strategy', 'guest'] as const;

/** The rows with guest "all" of a samples.csv; a cell that should be a number and is not is an XmeError naming it. */
export function readTotals(file: string): TotalsSample[] {
  let table: string[][];
  try {
    table = parse(fs.readFileSync(file, 'utf8'), { skip_empty_lines: true, relax_column_count: true }) as string[][];
  } catch (error) {
    throw new XmeError(`${file} is not readable CSV: ${(error as Error).message}`);
  }
  const header = table[0] ?? [];
  const missing = REQUIRED_SAMPLE_COLUMNS.filter((column) => !header.includes(column));
  if (missing.length > 0) throw new XmeError(`${file} is not a samples.csv: it has no column ${missing.join(', ')}`, RESULTS_HINT);
  const index = new Map(header.map((column, i) => [column, i]));
  const rows: TotalsSample[] = [];
  table.slice(1).forEach((cells, i) => {
    const cell = (column: string) => {
      const at = index.get(column);
      return at === undefined ? '' : (cells[at] ?? '');
    };
    if (cell('guest') !== 'all') return;
    const line = i + 2;
    const number = (column: string): number | undefined => {
      const value = cell(column);
      if (value === '') return undefined;
      const parsed = Number(value);
      if (!Number.isFinite(parsed)) throw new XmeError(`${file} line ${line}: ${column} is not a number: '${value}'`);
      return parsed;
    };
    const required = (column: string): number => {
      const value = number(column);
      if (value === undefined) throw new XmeError(`${file} line ${line}: ${column} is empty`);
      return value;
    };
    rows.push({
      memoryMiB: required('memory_mib'),
      repetition: required('repetition'),
      tick: required('tick'),
      tS: required('t_s'),
      strategy: cell('strategy'),
      sharingMode: cell('sharing_mode'),
      cowMethod: cell('cow_method'),
      cowCount: cell('cow_count') || undefined,
      cpuMethod: cell('cpu_method') || undefined,
      sharedPages: number('shared_pages'),
      framesSaved: number('frames_saved'),
      hostFramesSaved: number('host_frames_saved'),
      cowFaultsTotal: number('cow_faults_total'),
      status: cell('status'),
    });
  });
  return rows;
}
