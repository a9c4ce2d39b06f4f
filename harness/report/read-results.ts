/**
 * The results folders a report is drawn from: run.json (what ran), samples.csv (only the strategies' totals
 * per tick, the rows with guest "all") and summary.csv (means over repetitions, with unit and method).
 * Columns are read by name, so a folder written before a column existed (e.g. cow_count) still reads; a file
 * that is missing leaves its figures out of the report (figure-data.ts says why), it is not an error.
 */
import fs from 'node:fs';
import path from 'node:path';
import { requireFolder } from '../results/run-folder.ts';
import { object, readRunRecord, storedRunRecord, type StoredRunRecord } from '../results/run-record.ts';
import { readSamples, RESULTS_HINT, type SampleRow } from '../results/samples.ts';
import { readSummary, type SummaryRow } from '../results/summary.ts';

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
  /** Guest counts (several: the run swept the count); files before the sweep held one number. */
  guests: number[] | undefined;
  kernel: string | undefined;
  gitCommit: string | undefined;
  /** run.json warnings (e.g. a repetition that failed, a figure left out of summary.csv) */
  warnings: string[];
}

/** One samples.csv row with guest "all": a strategy's totals over all guests at one tick. */
export type TotalsSample = SampleRow;

export interface ReportRun {
  dir: string;
  info: RunInfo;
  /** undefined: the folder has no samples.csv */
  samples: TotalsSample[] | undefined;
  /** undefined: the folder has no summary.csv (a run killed, or whose summary could not be made) */
  summary: SummaryRow[] | undefined;
}

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
  const samplesCsv = path.join(dir, 'samples.csv');
  const summaryCsv = path.join(dir, 'summary.csv');
  const record = options.record === undefined ? readRunRecord(dir, RESULTS_HINT) : storedRunRecord(options.record, path.basename(dir));
  return {
    dir,
    info: runInfo(record),
    samples: fs.existsSync(samplesCsv) ? readSamples(samplesCsv, { guest: 'all' }) : undefined,
    summary: fs.existsSync(summaryCsv) ? readSummary(summaryCsv) : undefined,
  };
}

const text = (value: unknown): string | undefined => (typeof value === 'string' && value !== '' ? value : undefined);

/** The fields of a run.json the report shows; anything absent is undefined (older run.json files have fewer). */
export function runInfo(record: StoredRunRecord): RunInfo {
  const scenario = object(record.scenario);
  const backend = object(record.backend);
  const kernel = object(record.kernel);
  const details = [text(backend.version), text(backend.accelerator)].filter(Boolean);
  return {
    runId: record.runId,
    status: record.status,
    scenario: record.scenarioName,
    kaslr: typeof scenario.kaslr === 'boolean' ? scenario.kaslr : undefined,
    workload: text(object(scenario.workload).name),
    backend: text(backend.name) ? `${text(backend.name)}${details.length ? ` (${details.join(', ')})` : ''}` : undefined,
    sharingMode: text(record.sharingMode),
    cowMethod: text(record.cowMethod),
    cpuMethod: text(record.cpuMethod),
    startedAt: text(record.startedAt),
    guests: guestCounts(scenario.guests),
    kernel: mixedFleet(scenario.guestImages) ?? text(object(kernel.version).release) ?? text(object(record.image).kernelRelease),
    gitCommit: text(object(record.harness).gitCommit),
    warnings: Array.isArray(record.warnings) ? record.warnings.filter((w): w is string => typeof w === 'string') : [],
  };
}

/** A mixed fleet's images (scenario.guestImages), e.g. `mixed fleet: cloud, cloud@6.1.0-56 (guest i: image i mod 2)`; else undefined. */
function mixedFleet(value: unknown): string | undefined {
  const names = Array.isArray(value) ? value.filter((name): name is string => typeof name === 'string') : [];
  return names.length > 1 ? `mixed fleet: ${names.join(', ')} (guest i: image i mod ${names.length})` : undefined;
}

/** A scenario's guests as run.json holds it: a number (before sweeps), or a list of counts. */
function guestCounts(value: unknown): number[] | undefined {
  const list = Array.isArray(value) ? value : [value];
  return list.length > 0 && list.every((n): n is number => typeof n === 'number') ? list : undefined;
}
