/**
 * report.html and figures/ at the end of every `xme run`, behind the ResultWriter interface. The drawing code
 * (Observable Plot, linkedom) is loaded when the run begins, not when xme starts: every other command stays
 * quick to start. The report is made from the files the CSV writers closed before it, with the run record
 * run.json is about to get; a report that cannot be made is a warning in run.json, never a lost run.
 */
import { errorMessage } from '../util/errors.ts';
import type { ResultWriter, RunEnd, RunHeader } from '../experiment/writers/result-writer.ts';
import { runRecord } from '../experiment/writers/run-json.ts';
import type { reportFolders } from './report.ts';

export interface ReportModule {
  reportFolders: typeof reportFolders;
}

export class ReportWriter implements ResultWriter {
  private run: RunHeader | undefined;
  private module: ReportModule | undefined;
  private loadError: unknown;
  private loading: Promise<void> | undefined;

  /** `load` is the report code (default: ./report.ts); a test passes one that fails. */
  constructor(private readonly load: () => Promise<ReportModule> = () => import('./report.ts')) {}

  begin(run: RunHeader): void {
    this.run = run;
    this.loading = this.load().then(
      (module) => {
        this.module = module;
      },
      (error: unknown) => {
        this.loadError = error;
      },
    );
  }

  prepareEnd(): Promise<void> {
    return this.loading ?? Promise.resolve();
  }

  end(end: RunEnd): void {
    if (!this.run) return;
    try {
      if (!this.module) throw this.loadError ?? new Error('the report code had not loaded yet');
      this.module.reportFolders([this.run.dir], undefined, { record: runRecord(this.run, end), harnessCommit: this.run.harness.gitCommit });
    } catch (error) {
      end.warnings.push(`report.html not written: ${errorMessage(error)} (samples.csv and summary.csv are complete; to retry: xme report ${this.run.dir})`);
    }
  }
}
