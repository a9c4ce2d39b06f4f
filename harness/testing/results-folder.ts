/**
 * Synthetic results folders for unit tests of `xme compare`: summary.csv written by the same CsvAppender and
 * columns as `xme run`, and a run.json with the fields compare reads. No guest is booted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CsvAppender } from '../results/csv.ts';
import { SUMMARY_SCHEMA } from '../results/summary.ts';
import { writeJsonAtomically } from '../results/run-record.ts';

export interface SyntheticRow {
  /** Left empty unless given (as in files from before the column). */
  guests?: number;
  memory_mib?: number;
  strategy?: string;
  metric: string;
  unit?: string;
  n: number;
  mean: number;
  sd?: number;
  ci95_low?: number;
  ci95_high?: number;
  scenario?: string;
}

export interface SyntheticRun {
  runId: string;
  scenario?: string;
  status?: string;
  rows: SyntheticRow[];
  /** More of run.json: scenario settings (merged into its scenario), backend, harness, image. */
  settings?: { scenario?: Record<string, unknown>; backend?: Record<string, unknown>; harness?: Record<string, unknown>; image?: Record<string, unknown> };
}

/** Writes <root>/<runId>/{summary.csv,run.json} and returns the folder. */
export function writeResultsFolder(root: string, run: SyntheticRun): string {
  const dir = path.join(root, run.runId);
  fs.mkdirSync(dir, { recursive: true });
  const scenario = run.scenario ?? 'smoke';
  const summary = new CsvAppender(path.join(dir, 'summary.csv'), SUMMARY_SCHEMA);
  for (const row of run.rows) {
    summary.append({
      scenario: row.scenario ?? scenario,
      guests: row.guests,
      memory_mib: row.memory_mib ?? 256,
      strategy: row.strategy ?? 'semantic',
      metric: row.metric,
      unit: row.unit ?? 'pages',
      n: row.n,
      mean: row.mean,
      sd: row.sd,
      ci95_low: row.ci95_low,
      ci95_high: row.ci95_high,
      method: 'synthetic, for a test',
    });
  }
  summary.close();
  const { scenario: settings, ...more } = run.settings ?? {};
  writeJsonAtomically(path.join(dir, 'run.json'), {
    schema: 2,
    runId: run.runId,
    status: run.status ?? 'completed',
    scenario: { name: scenario, ...settings },
    ...more,
  });
  return dir;
}
