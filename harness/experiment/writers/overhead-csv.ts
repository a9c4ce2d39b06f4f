/**
 * overhead.csv: the guests' workload slowdown under each strategy against the scenario's baseline, with a
 * 95% CI (slowdown.ts). Written at the end, only for scenarios that name a baseline; an interrupted run's
 * file covers the repetition pairs it completed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CsvAppender } from '../csv-writer.ts';
import { SLOWDOWN_COLUMNS, slowdownRows, type SlowdownRow } from '../slowdown.ts';
import type { ResultWriter, RunEnd, RunHeader } from './result-writer.ts';

export class OverheadCsvWriter implements ResultWriter {
  private run: RunHeader | undefined;
  /** The rows written, for the console. */
  rows: SlowdownRow[] = [];

  begin(run: RunHeader): void {
    this.run = run;
  }

  end(end: RunEnd): void {
    const baseline = this.run?.scenario.baseline;
    if (!this.run || !baseline) return;
    this.rows = slowdownRows(this.run.scenario.name, baseline, end.repetitions);
    const file = path.join(this.run.dir, 'overhead.csv');
    fs.rmSync(file, { force: true });
    const csv = new CsvAppender(file, SLOWDOWN_COLUMNS);
    try {
      for (const row of this.rows) csv.append(row);
    } finally {
      csv.close();
    }
  }
}
