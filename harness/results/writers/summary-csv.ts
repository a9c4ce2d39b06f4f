/**
 * summary.csv: per memory size × strategy × metric, mean / sd / 95% CI over repetitions, with unit and method
 * (experiment/summary.ts computes the rows). Written once, at the end, whatever the ending: an interrupted
 * run's summary covers the repetitions it completed (none: a header alone). Not written when the summary
 * could not be made.
 */
import path from 'node:path';
import { writeCsv } from '../csv.ts';
import { SUMMARY_SCHEMA } from '../summary.ts';
import type { ResultWriter } from '../result-writer.ts';
import type { RunEnd, RunHeader } from '../run.ts';

export class SummaryCsvWriter implements ResultWriter {
  private dir: string | undefined;

  begin(run: RunHeader): void {
    this.dir = run.dir;
  }

  end(run: RunEnd): void {
    if (this.dir && run.summary) writeCsv(path.join(this.dir, 'summary.csv'), SUMMARY_SCHEMA, run.summary);
  }
}
