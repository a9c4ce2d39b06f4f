/**
 * summary.csv: per memory size × strategy × metric, mean / sd / 95% CI over repetitions, with unit and method
 * (summary.ts computes the rows). Written once, at the end, whatever the ending: an interrupted run's summary
 * covers the repetitions it completed (none: a header alone). Not written when the summary could not be made.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CsvAppender } from '../csv-writer.ts';
import { SUMMARY_COLUMNS } from '../samples.ts';
import type { ResultWriter, RunEnd, RunHeader } from './result-writer.ts';

export class SummaryCsvWriter implements ResultWriter {
  private dir: string | undefined;

  begin(run: RunHeader): void {
    this.dir = run.dir;
  }

  end(run: RunEnd): void {
    if (!this.dir || !run.summary) return;
    const file = path.join(this.dir, 'summary.csv');
    fs.rmSync(file, { force: true });
    const csv = new CsvAppender(file, SUMMARY_COLUMNS);
    try {
      for (const row of run.summary) csv.append(row);
    } finally {
      csv.close();
    }
  }
}
