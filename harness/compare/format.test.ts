import { describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { compareTwo, type CompareReport, type ResultsRun } from './compare-runs.ts';
import type { SummaryRow } from '../results/summary.ts';
import { storedRunRecord } from '../results/run-record.ts';
import { CSV_COLUMNS, formatCsv, formatMarkdown, formatNumber, formatReport, formatTable, METHOD_LINE } from './format.ts';

function row(values: Partial<SummaryRow> & Pick<SummaryRow, 'metric' | 'n' | 'mean'>): SummaryRow {
  return {
    scenario: 'smoke',
    memory_mib: 256,
    strategy: 'semantic',
    unit: 'pages',
    sd: undefined,
    ci95_low: undefined,
    ci95_high: undefined,
    method: '',
    ...values,
  };
}

function run(runId: string, rows: SummaryRow[], status = 'completed'): ResultsRun {
  return { dir: `/results/${runId}`, runId, scenario: 'smoke', status, record: storedRunRecord({ runId, status, scenario: { name: 'smoke' } }, runId), rows };
}

function report(a: ResultsRun, b: ResultsRun, warnings: string[] = []): CompareReport {
  return { runs: [a, b], comparisons: [compareTwo(a, b)], warnings, differences: [] };
}

// 10 ± 2 (n 5) → 12 ± 3 (n 6): +20%, Welch t 1.31876, df 8.67213, p 0.221010 (SciPy ttest_ind_from_stats)
const small = report(
  run('run-a', [row({ metric: 'shared_pages', n: 5, mean: 10, sd: 2, ci95_low: 7.517, ci95_high: 12.48 })]),
  run('run-b', [row({ metric: 'shared_pages', n: 6, mean: 12, sd: 3, ci95_low: 8.852, ci95_high: 15.15 })]),
);

const rich = report(
  run('run-a', [
    row({ metric: 'shared_pages', n: 5, mean: 10, sd: 2, ci95_low: 7.517, ci95_high: 12.48 }),
    row({ metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 100, sd: 1, ci95_low: 99.28, ci95_high: 100.7 }),
    row({ strategy: 'content', metric: 'shared_pages', n: 1, mean: 185142 }),
    row({ memory_mib: 512, metric: 'shared_pages', n: 3, mean: 20, sd: 1, ci95_low: 17.52, ci95_high: 22.48 }),
  ]),
  run(
    'run-b',
    [
      row({ metric: 'shared_pages', n: 6, mean: 12, sd: 3, ci95_low: 8.852, ci95_high: 15.15 }),
      row({ metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 110, sd: 2, ci95_low: 108.6, ci95_high: 111.4 }),
      row({ strategy: 'content', metric: 'shared_pages', n: 3, mean: 185000, sd: 10, ci95_low: 184975, ci95_high: 185025 }),
      row({ strategy: 'content', metric: 'scan_cpu_ms', unit: 'ms per scan', n: 3, mean: 360.7, sd: 5, ci95_low: 348.3, ci95_high: 373.1 }),
    ],
    'interrupted',
  ),
  ["run run-b is 'interrupted', not completed"],
);

describe('console table', () => {
  it('prints a heading per compared run, aligned columns, and how to read them', () => {
    expect(formatTable(small)).toBe(
      [
        'B = run-b (smoke, completed) vs A = run-a (smoke, completed), the baseline',
        'memory   strategy  metric        unit   n A/B    A mean [95% CI]    B mean [95% CI]  B vs A      p  verdict',
        '-------  --------  ------------  -----  -----  -----------------  -----------------  ------  -----  ---------------',
        '256 MiB  semantic  shared_pages  pages    5/6  10 [7.517, 12.48]  12 [8.852, 15.15]  +20.0%  0.221  not significant',
        '',
        METHOD_LINE,
        '',
      ].join('\n'),
    );
  });

  it('says significant, not significant, n < 2: cannot judge, missing in A or B; warnings first', () => {
    const lines = formatTable(rich).split('\n');
    expect(lines[0]).toBe("warning: run run-b is 'interrupted', not completed");
    expect(lines[2]).toBe('B = run-b (smoke, interrupted) vs A = run-a (smoke, completed), the baseline');
    const cells = lines.slice(5, 10).map((line) => line.trim().split(/ {2,}/));
    expect(cells).toEqual([
      ['256 MiB', 'semantic', 'shared_pages', 'pages', '5/6', '10 [7.517, 12.48]', '12 [8.852, 15.15]', '+20.0%', '0.221', 'not significant'],
      ['256 MiB', 'semantic', 'scan_cpu_ms', 'ms per scan', '10/10', '100 [99.28, 100.7]', '110 [108.6, 111.4]', '+10.0%', '<0.001', 'significant'],
      // (185000 − 185142) / 185142 = −0.0767%
      ['256 MiB', 'content', 'shared_pages', 'pages', '1/3', '185,142', '185,000 [184,975, 185,025]', '-0.08%', '–', 'n < 2: cannot judge'],
      ['512 MiB', 'semantic', 'shared_pages', 'pages', '3/–', '20 [17.52, 22.48]', '–', '–', '–', 'missing in B'],
      ['256 MiB', 'content', 'scan_cpu_ms', 'ms per scan', '–/3', '–', '360.7 [348.3, 373.1]', '–', '–', 'missing in A'],
    ]);
  });

  it('shows a scenario column only when a comparison spans scenarios', () => {
    const a = { ...run('a', [row({ metric: 'cow_faults', unit: 'faults', n: 3, mean: 100, sd: 5 })]), scenario: 'cow-faults' };
    const b = {
      ...run('b', [row({ scenario: 'cow-faults-own-data', metric: 'cow_faults', unit: 'faults', n: 3, mean: 40, sd: 5 })]),
      scenario: 'cow-faults-own-data',
    };
    a.rows[0]!.scenario = 'cow-faults';
    const paired: CompareReport = { runs: [a, b], comparisons: [compareTwo(a, b, { ignoreScenario: true })], warnings: [], differences: [] };
    const lines = formatTable(paired).split('\n');
    expect(lines[1]!.startsWith('scenario  ')).toBe(true);
    expect(lines[3]!.startsWith('cow-faults → cow-faults-own-data  256 MiB')).toBe(true);
    expect(formatTable(small).split('\n')[1]!.startsWith('memory')).toBe(true);
  });
});

describe('markdown', () => {
  it('prints a heading and a table per compared run, numbers right-aligned', () => {
    expect(formatMarkdown(small)).toBe(
      [
        '### B = run-b (smoke, completed) vs A = run-a (smoke, completed), the baseline',
        '',
        '| memory | strategy | metric | unit | n A/B | A mean [95% CI] | B mean [95% CI] | B vs A | p | verdict |',
        '|---|---|---|---|---:|---:|---:|---:|---:|---|',
        '| 256 MiB | semantic | shared_pages | pages | 5/6 | 10 [7.517, 12.48] | 12 [8.852, 15.15] | +20.0% | 0.221 | not significant |',
        '',
        `_${METHOD_LINE}_`,
        '',
      ].join('\n'),
    );
  });

  it('quotes warnings and escapes a | in a cell', () => {
    const withPipe = report(
      run('a', [row({ strategy: 'x|y', metric: 'm', n: 1, mean: 1 })]),
      run('b', [row({ strategy: 'x|y', metric: 'm', n: 1, mean: 2 })]),
      ['careful'],
    );
    const text = formatMarkdown(withPipe);
    expect(text.startsWith('> **warning:** careful\n\n### ')).toBe(true);
    expect(text).toContain('| 256 MiB | x\\|y | m | pages | 1/1 | 1 | 2 | +100.0% | – | n < 2: cannot judge |');
  });
});

describe('CSV', () => {
  it('has one row per compared row, with the Welch figures and named columns', () => {
    const text = formatCsv(small);
    const [header] = parse(text, { to_line: 1 }) as string[][];
    expect(header).toEqual([...CSV_COLUMNS]);
    expect(header).toContain('memory_mib');
    expect(header).toContain('difference_pct');
    const records = parse(text, { columns: true }) as Record<string, string>[];
    expect(records).toEqual([
      {
        baseline_run: 'run-a',
        baseline_status: 'completed',
        run: 'run-b',
        run_status: 'completed',
        scenario: 'smoke',
        guests: '',
        memory_mib: '256',
        strategy: 'semantic',
        metric: 'shared_pages',
        unit: 'pages',
        n_a: '5',
        mean_a: '10',
        sd_a: '2',
        ci95_low_a: '7.517',
        ci95_high_a: '12.48',
        n_b: '6',
        mean_b: '12',
        sd_b: '3',
        ci95_low_b: '8.852',
        ci95_high_b: '15.15',
        difference: '2',
        difference_pct: '20',
        t: '1.31876',
        df: '8.67213',
        p_value: '0.22101',
        verdict: 'not significant',
      },
    ]);
  });

  it('leaves what cannot be computed empty, says why in verdict, and carries no warning lines', () => {
    const records = parse(formatCsv(rich), { columns: true }) as Record<string, string>[];
    expect(records.map((r) => [r.strategy, r.metric, r.memory_mib, r.t, r.p_value, r.verdict])).toEqual([
      ['semantic', 'shared_pages', '256', '1.31876', '0.22101', 'not significant'],
      ['semantic', 'scan_cpu_ms', '256', '14.1421', '2.27296e-9', 'significant'],
      ['content', 'shared_pages', '256', '', '', 'n < 2: cannot judge'],
      ['semantic', 'shared_pages', '512', '', '', 'missing in B'],
      ['content', 'scan_cpu_ms', '256', '', '', 'missing in A'],
    ]);
    expect(records[2]).toMatchObject({ sd_a: '', ci95_low_a: '', difference: '-142', run_status: 'interrupted' });
    expect(records[3]).toMatchObject({ n_b: '', mean_b: '', difference_pct: '' });
    expect(formatCsv(rich)).not.toContain('warning');
  });
});

describe('number formatting', () => {
  it('keeps 4 significant digits and groups thousands', () => {
    expect(formatNumber(0)).toBe('0');
    expect(formatNumber(15.2345)).toBe('15.23');
    expect(formatNumber(0.012345)).toBe('0.01235');
    expect(formatNumber(0.0001234)).toBe('1.23e-4');
    expect(formatNumber(185142.4)).toBe('185,142');
    expect(formatNumber(-2500)).toBe('-2,500');
  });

  it('chooses the format by name', () => {
    expect(formatReport(small, 'table')).toBe(formatTable(small));
    expect(formatReport(small, 'md')).toBe(formatMarkdown(small));
    expect(formatReport(small, 'csv')).toBe(formatCsv(small));
  });
});
