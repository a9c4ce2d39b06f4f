import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { XmeError } from '../util/errors.ts';
import { writeResultsFolder, type SyntheticRow } from '../testing/results-folder.ts';
import { compareRuns, readResultsRun, type ComparedRow } from './compare-runs.ts';
import { resolveRunDir } from '../results/run-folder.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-compare-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let folders = 0;
/** A fresh folder under root for each test, so that tests do not share files. */
function folder(runId: string, rows: SyntheticRow[], extra: { scenario?: string; status?: string } = {}): string {
  return writeResultsFolder(path.join(root, `t${++folders}`), { runId, rows, ...extra });
}

function find(rows: ComparedRow[], memoryMiB: number, strategy: string, metric: string): ComparedRow {
  const row = rows.find((r) => r.memoryMiB === memoryMiB && r.strategy === strategy && r.metric === metric);
  if (!row) throw new Error(`no row ${memoryMiB} ${strategy} ${metric}`);
  return row;
}

function thrown(f: () => unknown): XmeError {
  try {
    f();
  } catch (error) {
    expect(error).toBeInstanceOf(XmeError);
    expect((error as XmeError).oneLine()).not.toContain('\n');
    return error as XmeError;
  }
  throw new Error('expected an XmeError, nothing was thrown');
}

describe('reading a results folder', () => {
  it('reads summary.csv rows, with empty sd and CI for one repetition, and run.json id, scenario and status', () => {
    const dir = folder(
      'run-a',
      [
        { metric: 'shared_pages', n: 5, mean: 10, sd: 2, ci95_low: 7.51669, ci95_high: 12.4833 },
        { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 1, mean: 3.25 },
      ],
      { scenario: 'scan-overhead', status: 'interrupted' },
    );
    const run = readResultsRun(dir);
    expect(run).toMatchObject({ dir, runId: 'run-a', scenario: 'scan-overhead', status: 'interrupted' });
    expect(run.rows).toEqual([
      {
        scenario: 'scan-overhead',
        memory_mib: 256,
        strategy: 'semantic',
        metric: 'shared_pages',
        unit: 'pages',
        n: 5,
        mean: 10,
        sd: 2,
        ci95_low: 7.51669,
        ci95_high: 12.4833,
        method: 'synthetic, for a test',
      },
      {
        scenario: 'scan-overhead',
        memory_mib: 256,
        strategy: 'semantic',
        metric: 'scan_cpu_ms',
        unit: 'ms per scan',
        n: 1,
        mean: 3.25,
        sd: undefined,
        ci95_low: undefined,
        ci95_high: undefined,
        method: 'synthetic, for a test',
      },
    ]);
  });

  it('refuses a folder that is not a results folder, in one line naming the path and what is missing', () => {
    const empty = fs.mkdtempSync(path.join(root, 'empty-'));
    expect(thrown(() => readResultsRun(empty)).message).toBe(`${empty} is not a results folder: it has no summary.csv and no run.json`);

    const onlyRunJson = fs.mkdtempSync(path.join(root, 'running-'));
    fs.writeFileSync(path.join(onlyRunJson, 'run.json'), JSON.stringify({ runId: 'x', status: 'running', scenario: { name: 'smoke' } }));
    expect(thrown(() => readResultsRun(onlyRunJson)).message).toBe(
      `${onlyRunJson} is not a complete results folder: it has no summary.csv (run.json says status 'running')`,
    );

    const onlySummary = folder('no-json', [{ metric: 'shared_pages', n: 2, mean: 1, sd: 0 }]);
    fs.rmSync(path.join(onlySummary, 'run.json'));
    expect(thrown(() => readResultsRun(onlySummary)).message).toBe(`${onlySummary} is not a results folder: it has no run.json`);

    const missing = path.join(root, 'no-such-run');
    expect(thrown(() => readResultsRun(missing)).message).toBe(`results folder ${missing} does not exist`);

    const file = path.join(root, 'a-file');
    fs.writeFileSync(file, 'x');
    expect(thrown(() => readResultsRun(file)).message).toBe(`${file} is not a results folder: it is not a directory`);
  });

  it('refuses a summary.csv without the columns compare needs, or with a number that is not one', () => {
    const dir = folder('bad-columns', []);
    fs.writeFileSync(path.join(dir, 'summary.csv'), 'scenario,memory_mib,strategy,metric,unit,n,mean\nsmoke,256,semantic,shared_pages,pages,2,5\n');
    expect(thrown(() => readResultsRun(dir)).message).toBe(`${path.join(dir, 'summary.csv')} is not a summary.csv: it has no column sd, ci95_low, ci95_high`);

    fs.writeFileSync(
      path.join(dir, 'summary.csv'),
      'scenario,memory_mib,strategy,metric,unit,n,mean,sd,ci95_low,ci95_high\nsmoke,256,semantic,shared_pages,pages,2,lots,1,0,9\n',
    );
    expect(thrown(() => readResultsRun(dir)).message).toBe(`${path.join(dir, 'summary.csv')} line 2: mean is not a number: 'lots'`);
  });

  it('finds a bare run id under the results root, a path as it is', () => {
    const dir = folder('20250101-120000-smoke', []);
    expect(resolveRunDir('20250101-120000-smoke', path.dirname(dir))).toBe(dir);
    expect(resolveRunDir(dir, '/nonexistent')).toBe(dir);
    expect(resolveRunDir('nowhere', path.dirname(dir))).toBe(path.resolve('nowhere'));
  });
});

describe('pairing the rows of two runs', () => {
  const rowsA: SyntheticRow[] = [
    { metric: 'shared_pages', n: 5, mean: 10, sd: 2 },
    { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 100, sd: 1 },
    { strategy: 'content', metric: 'shared_pages', n: 1, mean: 185142 },
    { memory_mib: 512, metric: 'shared_pages', n: 3, mean: 20, sd: 1 },
  ];
  const rowsB: SyntheticRow[] = [
    { strategy: 'content', metric: 'shared_pages', n: 3, mean: 185000, sd: 10 },
    { strategy: 'content', metric: 'scan_cpu_ms', unit: 'ms per scan', n: 3, mean: 360, sd: 5 },
    { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 110, sd: 2 },
    { metric: 'shared_pages', n: 6, mean: 12, sd: 3 },
  ];

  it('pairs by scenario × memory × strategy × metric with Welch’s verdict, lists missing rows, A’s order first', () => {
    const report = compareRuns([folder('run-a', rowsA), folder('run-b', rowsB)]);
    expect(report.warnings).toEqual([]);
    expect(report.comparisons).toHaveLength(1);
    const { baseline, run, rows } = report.comparisons[0]!;
    expect([baseline.runId, run.runId]).toEqual(['run-a', 'run-b']);
    expect(rows.map((r) => [r.memoryMiB, r.strategy, r.metric, r.a !== undefined, r.b !== undefined])).toEqual([
      [256, 'semantic', 'shared_pages', true, true],
      [256, 'semantic', 'scan_cpu_ms', true, true],
      [256, 'content', 'shared_pages', true, true],
      [512, 'semantic', 'shared_pages', true, false],
      [256, 'content', 'scan_cpu_ms', false, true],
    ]);

    // 10 ± 2 (n 5) → 12 ± 3 (n 6): +20%, t 1.31876, df 8.67213, p 0.221 (SciPy ttest_ind_from_stats, Welch)
    const pages = find(rows, 256, 'semantic', 'shared_pages');
    expect(pages.changePct).toBeCloseTo(20, 10);
    expect(pages.judgement!.verdict).toBe('not significant');
    expect(pages.judgement!.welch!.p).toBeCloseTo(0.221009742779263, 12);
    expect(pages.judgement!.welch!.df).toBeCloseTo(8.67213114754098, 12);

    // 100 ± 1 → 110 ± 2, n 10 each: +10%, p 2.27e-9
    const cpu = find(rows, 256, 'semantic', 'scan_cpu_ms');
    expect(cpu.changePct).toBeCloseTo(10, 10);
    expect(cpu.judgement!.verdict).toBe('significant');
    expect(cpu.judgement!.welch!.p).toBeCloseTo(2.2729646849230015e-9, 15);

    // one repetition in A: no verdict
    const content = find(rows, 256, 'content', 'shared_pages');
    expect(content.judgement).toEqual({ verdict: 'cannot judge', reason: 'n < 2' });
    expect(content.changePct).toBeCloseTo(((185000 - 185142) / 185142) * 100, 10);

    // missing on a side: no change, no verdict
    expect(find(rows, 512, 'semantic', 'shared_pages')).toMatchObject({ b: undefined, changePct: undefined, judgement: undefined });
    expect(find(rows, 256, 'content', 'scan_cpu_ms')).toMatchObject({ a: undefined, changePct: undefined, judgement: undefined });
  });

  it('pairs runs of different guest counts row by row, but the counts of a sweep each with its own', () => {
    const single = compareRuns([
      folder('three', [{ guests: 3, metric: 'shared_pages', n: 2, mean: 10, sd: 1 }]),
      folder('sixteen', [{ guests: 16, metric: 'shared_pages', n: 2, mean: 50, sd: 1 }]),
    ]).comparisons[0]!.rows;
    expect(single.map((r) => [r.a?.mean, r.b?.mean])).toEqual([[10, 50]]);
    const sweep = (runId: string, offset: number) =>
      folder(
        runId,
        [2, 8].map((guests) => ({ guests, metric: 'shared_pages', n: 2, mean: guests * 10 + offset, sd: 1 })),
      );
    const swept = compareRuns([sweep('sweep-a', 0), sweep('sweep-b', 1)]).comparisons[0]!.rows;
    expect(swept.map((r) => [r.guests, r.a?.mean, r.b?.mean])).toEqual([
      [2, 20, 21],
      [8, 80, 81],
    ]);
  });

  it('compares each further run against the first', () => {
    const a = folder('run-a', [{ metric: 'shared_pages', n: 5, mean: 10, sd: 2 }]);
    const b = folder('run-b', [{ metric: 'shared_pages', n: 6, mean: 12, sd: 3 }]);
    const c = folder('run-c', [{ metric: 'shared_pages', n: 5, mean: 5, sd: 2 }]);
    const report = compareRuns([a, b, c]);
    expect(report.comparisons.map((cmp) => [cmp.baseline.runId, cmp.run.runId])).toEqual([
      ['run-a', 'run-b'],
      ['run-a', 'run-c'],
    ]);
    expect(report.comparisons[1]!.rows[0]!.changePct).toBeCloseTo(-50, 10);
  });

  it('keeps only the metrics asked for, and refuses one that no run has', () => {
    const a = folder('run-a', rowsA);
    const b = folder('run-b', rowsB);
    const report = compareRuns([a, b], { metrics: ['scan_cpu_ms'] });
    expect(report.comparisons[0]!.rows.map((r) => `${r.strategy} ${r.metric}`)).toEqual(['semantic scan_cpu_ms', 'content scan_cpu_ms']);
    const error = thrown(() => compareRuns([a, b], { metrics: ['scan_cpu_ms', 'sharde_pages'] }));
    expect(error.message).toBe("no run has a metric 'sharde_pages'");
    expect(error.hint).toMatch(/shared_pages/);
  });

  it('refuses a metric whose unit differs between the runs, naming it', () => {
    const a = folder('run-a', [
      { metric: 'shared_pages', n: 2, mean: 1, sd: 1 },
      { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 2, mean: 1, sd: 1 },
    ]);
    const b = folder('run-b', [
      { metric: 'shared_pages', n: 2, mean: 1, sd: 1 },
      { metric: 'scan_cpu_ms', unit: 'ms', n: 2, mean: 1, sd: 1 },
    ]);
    const error = thrown(() => compareRuns([a, b]));
    expect(error.message).toBe("metric 'scan_cpu_ms' is in 'ms per scan' in run-a but in 'ms' in run-b: means in different units cannot be compared");
    // leaving the metric out compares the rest
    expect(compareRuns([a, b], { metrics: ['shared_pages'] }).comparisons[0]!.rows).toHaveLength(1);
  });

  it('compares runs that did not complete, with a warning naming them', () => {
    const a = folder('run-a', [{ metric: 'shared_pages', n: 2, mean: 1, sd: 1 }]);
    const b = folder('run-b', [{ metric: 'shared_pages', n: 2, mean: 1, sd: 1 }], { status: 'interrupted' });
    const report = compareRuns([a, b]);
    expect(report.comparisons[0]!.rows).toHaveLength(1);
    expect(report.warnings).toEqual([`run run-b is 'interrupted', not completed: its figures may cover fewer repetitions than planned (${b})`]);
  });

  it('pairs runs of different scenarios only when asked to, and says so either way', () => {
    const a = folder('run-a', [{ metric: 'cow_faults', unit: 'faults', n: 3, mean: 100, sd: 5 }], { scenario: 'cow-faults' });
    const b = folder('run-b', [{ metric: 'cow_faults', unit: 'faults', n: 3, mean: 40, sd: 5 }], { scenario: 'cow-faults-own-data' });
    const strict = compareRuns([a, b]);
    expect(strict.comparisons[0]!.rows.map((r) => [r.scenario, r.a !== undefined, r.b !== undefined])).toEqual([
      ['cow-faults', true, false],
      ['cow-faults-own-data', false, true],
    ]);
    expect(strict.warnings).toEqual([
      "run run-b is of scenario 'cow-faults-own-data', the baseline of 'cow-faults': no row pairs; --ignore-scenario pairs them by memory × strategy × metric",
    ]);
    const loose = compareRuns([a, b], { ignoreScenario: true });
    expect(loose.comparisons[0]!.rows).toHaveLength(1);
    expect(loose.comparisons[0]!.rows[0]).toMatchObject({ scenario: 'cow-faults → cow-faults-own-data', changePct: -60 });
    expect(loose.comparisons[0]!.rows[0]!.judgement!.verdict).toBe('significant');
    expect(loose.warnings[0]).toMatch(/rows paired by memory × strategy × metric \(--ignore-scenario\)$/);
  });

  it('needs two runs', () => {
    expect(thrown(() => compareRuns([folder('only', [])])).message).toBe('compare needs at least two results folders, got 1');
  });
});
