/**
 * samples.csv: one row per tick × strategy × guest, appended as each sample is measured (an interrupted run
 * keeps every complete row). Columns and rows: samples.ts.
 */
import path from 'node:path';
import { CsvAppender } from '../csv.ts';
import { SAMPLE_SCHEMA, sampleRow } from '../samples.ts';
import type { TickSample } from '../tick-sample.ts';
import type { ResultWriter } from '../result-writer.ts';
import type { RunHeader } from '../run.ts';

export class SamplesCsvWriter implements ResultWriter {
  private csv: CsvAppender<typeof SAMPLE_SCHEMA> | undefined;
  private run: RunHeader | undefined;

  begin(run: RunHeader): void {
    this.run = run;
    this.csv = new CsvAppender(path.join(run.dir, 'samples.csv'), SAMPLE_SCHEMA);
  }

  sample(sample: TickSample): void {
    if (!this.csv || !this.run) throw new Error('SamplesCsvWriter: sample() before begin()');
    this.csv.append(sampleRow(this.run, sample));
  }

  end(): void {
    this.csv?.close();
  }
}
