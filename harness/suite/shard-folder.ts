/**
 * The files of a shard's results folder, shared by the shard runner (writes) and `xme merge` (reads):
 *
 *     <shard folder>/shard.json        the suite (name, quick, digest, every cell and its shard), this shard,
 *                                      host, harness, times, and how each of its cells ended
 *     <shard folder>/<cell-id>/        an ordinary results folder of `xme run` (run.json, samples.csv,
 *                                      summary.csv, report.html, logs/) for one cell, plus
 *     <shard folder>/<cell-id>/cell.json  the cell and its per-repetition metrics: what merge recomputes
 *                                      the summary from (summary.csv holds only means, not repetitions)
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError, errorMessage } from '../util/errors.ts';
import type { HarnessInfo, HostInfo } from '../results/provenance.ts';
import type { RepetitionMetrics } from '../results/summary.ts';
import type { ResultWriter } from '../results/result-writer.ts';
import type { RunEnd, RunHeader } from '../results/run.ts';
import { writeJsonAtomically } from '../results/run-record.ts';
import type { Cell } from './cells.ts';

export const SHARD_KIND = 'xme-suite-shard';
export const CELL_KIND = 'xme-suite-cell';

export interface ShardCellResult {
  id: string;
  status: 'completed' | 'interrupted' | 'failed' | 'skipped (completed before)';
  seconds: number;
  error?: string;
}

export interface ShardRecord {
  kind: typeof SHARD_KIND;
  schema: 1;
  suite: string;
  quick: boolean;
  digest: string;
  shard: { index: number; count: number };
  status: 'running' | 'completed' | 'failed' | 'interrupted';
  /** Every cell of the suite with the shard it goes to: merge finds missing cells from it. */
  suiteCells: { id: string; variant: string; shard: number }[];
  host: HostInfo;
  harness: HarnessInfo;
  /** Slurm job, array task and node, when run under Slurm. */
  slurm?: Record<string, string>;
  startedAt: string;
  endedAt?: string;
  cells: ShardCellResult[];
}

export interface CellRecord {
  kind: typeof CELL_KIND;
  suite: string;
  digest: string;
  cell: Cell;
  status: RunEnd['status'];
  repetitions: RepetitionMetrics[];
}

export function shardFolderName(suite: string, quick: boolean, index: number, count: number): string {
  return `${suite}${quick ? '-quick' : ''}.shard-${index}-of-${count}`;
}

export function readJson(file: string, what: string): unknown {
  if (!fs.existsSync(file)) throw new XmeError(`${file} is missing`, what);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new XmeError(`${file} is not readable JSON: ${errorMessage(error)}`, what);
  }
}

export function readShardRecord(dir: string): ShardRecord {
  const json = readJson(path.join(dir, 'shard.json'), `${dir} is not a shard folder of xme suite run`);
  if (typeof json !== 'object' || json === null || (json as { kind?: unknown }).kind !== SHARD_KIND) {
    throw new XmeError(`${dir}/shard.json is not a shard record (kind is not '${SHARD_KIND}')`, 'give folders written by xme suite run');
  }
  return json as ShardRecord;
}

export function writeShardRecord(dir: string, record: ShardRecord): void {
  writeJsonAtomically(path.join(dir, 'shard.json'), record);
}

/** Writes cell.json when a cell's run ends, whatever the ending: its repetitions are what merge summarises. */
export class CellWriter implements ResultWriter {
  private dir: string | undefined;

  constructor(private readonly base: Omit<CellRecord, 'kind' | 'status' | 'repetitions'>) {}

  begin(run: RunHeader): void {
    this.dir = run.dir;
  }

  end(end: RunEnd): void {
    if (!this.dir) return;
    const record: CellRecord = { kind: CELL_KIND, ...this.base, status: end.status, repetitions: end.repetitions };
    writeJsonAtomically(path.join(this.dir, 'cell.json'), record);
  }
}
