/**
 * report.html and figures/ at the end of every `xme run`, as a FolderOutput: made from the files the writers
 * finished, with the record run.json is about to get. The drawing code (Observable Plot, linkedom) is loaded
 * when the run begins, not when xme starts: every other command stays quick to start. A report that cannot
 * be made is a warning in run.json, never a lost run.
 */
import { errorMessage } from '../util/errors.ts';
import type { FolderOutput } from '../results/result-writer.ts';
import type { RunHeader } from '../results/run.ts';
import type { RunRecord } from '../results/run-record.ts';
import type { reportFolders } from './report.ts';

export interface ReportModule {
  reportFolders: typeof reportFolders;
}

export class ReportWriter implements FolderOutput {
  private harnessCommit: string | undefined;
  private module: ReportModule | undefined;
  private loadError: unknown;
  private loading: Promise<void> | undefined;

  /** `load` is the report code (default: ./report.ts); a test passes one that fails. */
  constructor(private readonly load: () => Promise<ReportModule> = () => import('./report.ts')) {}

  begin(run: RunHeader): void {
    this.harnessCommit = run.harness.gitCommit;
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

  make(dir: string, record: RunRecord): readonly string[] {
    try {
      if (!this.module) throw this.loadError ?? new Error('the report code had not loaded yet');
      this.module.reportFolders([dir], undefined, { record, harnessCommit: this.harnessCommit });
      return [];
    } catch (error) {
      return [`report.html not written: ${errorMessage(error)} (samples.csv and summary.csv are complete; to retry: xme report ${dir})`];
    }
  }
}
