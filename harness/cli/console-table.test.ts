/** The console table from a recorded summary. */
import { describe, expect, it } from 'vitest';
import type { SummaryRow } from '../results/summary.ts';
import type { RunEnd } from '../results/run.ts';
import { consoleTable, ConsoleTableWriter } from './console-table.ts';

function row(strategy: string, metric: string, mean: number): SummaryRow {
  return { scenario: 's', memory_mib: 256, strategy, metric, unit: 'u', n: 1, mean, sd: undefined, ci95_low: undefined, ci95_high: undefined, method: 'm' };
}

const summary = [
  row('semantic', 'shared_pages', 10758),
  row('semantic', 'scan_cpu_ms', 15.24),
  row('content', 'shared_pages', 185142),
  row('content', 'frames_saved_pct', 88.44),
  row('content', 'scan_cpu_ratio_vs_semantic', 23.71),
  row('content', 'distinct_hashes', 5), // a declared figure: not a column of the table
];

function end(rows: SummaryRow[] | undefined): RunEnd {
  return {
    status: 'completed',
    endedAt: '',
    backend: undefined,
    sharingModes: [],
    cowMethods: [],
    repetitions: [],
    summary: rows,
    overhead: undefined,
    warnings: [],
    notes: [],
  };
}

describe('console table', () => {
  it('shows the key figures per memory size and strategy, – where a figure was not measured', () => {
    expect(consoleTable(summary)).toBe(
      [
        'memory   strategy  shared pages  saved %  host saved  zero pages  kcode %  CoW faults  scan ms  scan ×sem  tick ms  tick ×sem  CPU ms/s  guest ops/s',
        '-------  --------  ------------  -------  ----------  ----------  -------  ----------  -------  ---------  -------  ---------  --------  -----------',
        '256 MiB  semantic        10,758        –           –           –        –           –     15.2          –        –          –         –            –',
        '256 MiB  content        185,142     88.4           –           –        –           –        –       23.7        –          –         –            –',
      ].join('\n'),
    );
  });

  it('is printed by its writer once the run has a summary, and not for a run without one', () => {
    const printed: string[] = [];
    const writer = new ConsoleTableWriter((text) => printed.push(text));
    writer.end(end(undefined));
    writer.end(end([]));
    expect(printed).toEqual([]);
    writer.end(end(summary));
    expect(printed).toEqual([`\n${consoleTable(summary)}\n`]);
  });
});
