/**
 * overhead.csv: the guests' workload slowdown under each strategy against the scenario's baseline, with a
 * 95% CI (experiment/slowdown.ts computes the rows). Written at the end, only for scenarios that name a
 * baseline; an interrupted run's file covers the repetition pairs it completed.
 */
import path from 'node:path';
import { writeCsv } from '../csv.ts';
import { SLOWDOWN_SCHEMA } from '../overhead.ts';
import type { ResultWriter } from '../result-writer.ts';
import type { RunEnd, RunHeader } from '../run.ts';

export class OverheadCsvWriter implements ResultWriter {
  private dir: string | undefined;

  begin(run: RunHeader): void {
    this.dir = run.dir;
  }

  end(end: RunEnd): void {
    if (this.dir && end.overhead) writeCsv(path.join(this.dir, 'overhead.csv'), SLOWDOWN_SCHEMA, end.overhead);
  }
}
