/** The console table from a recorded summary. */
import { describe, expect, it } from 'vitest';
import type { SummaryRow } from '../results/summary.ts';
import type { RunEnd } from '../results/run.ts';
import { COST_LEGEND, consoleTable, ConsoleTableWriter } from './console-table.ts';

function row(strategy: string, metric: string, mean: number): SummaryRow {
  return { scenario: 's', memory_mib: 256, strategy, metric, unit: 'u', n: 1, mean, sd: undefined, ci95_low: undefined, ci95_high: undefined, method: 'm' };
}

const summary = [
  row('semantic', 'shared_pages', 10758),
  row('semantic', 'scan_cpu_ms', 15.24),
  row('content', 'shared_pages', 185142),
  row('content', 'frames_saved_pct', 88.44),
  row('content', 'scan_cpu_ratio_vs_semantic', 23.71),
  // The tick split (as measured on main before it: semantic 18.3 ms a tick, content 143.6 ms).
  row('semantic', 'mechanism_cpu_ms', 4.9),
  row('semantic', 'cow_model_cpu_ms', 0),
  row('semantic', 'instrument_cpu_ms', 13.4),
  row('semantic', 'tick_cpu_ms', 18.3),
  row('content', 'mechanism_cpu_ms', 21.9),
  row('content', 'mechanism_cpu_ratio_vs_semantic', 4.47),
  row('content', 'cow_model_cpu_ms', 0.02),
  row('content', 'instrument_cpu_ms', 121.7),
  row('content', 'tick_cpu_ms', 143.6),
  row('content', 'tick_cpu_ratio_vs_semantic', 7.85),
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
        'memory   strategy  shared pages  saved %  host saved  zero pages  kcode %  CoW faults  guest ops/s',
        '-------  --------  ------------  -------  ----------  ----------  -------  ----------  -----------',
        '256 MiB  semantic        10,758        –           –           –        –           –            –',
        '256 MiB  content        185,142     88.4           –           –        –           –            –',
        '',
        'CPU per tick: mechanism and instrument',
        'memory   strategy  mech ms  mech ×sem  CoW model ms  instr ms  tick ms  tick ×sem  scan ms  CPU ms/s',
        '-------  --------  -------  ---------  ------------  --------  -------  ---------  -------  --------',
        '256 MiB  semantic      4.9          –          0.00      13.4     18.3          –     15.2         –',
        '256 MiB  content      21.9        4.5          0.02     121.7    143.6        7.8        –         –',
        ...COST_LEGEND,
      ].join('\n'),
    );
  });

  it('labels the mechanism’s ms and its ratio to semantic apart from the whole tick’s', () => {
    const lines = consoleTable(summary).split('\n');
    const header = lines.find((line) => line.startsWith('memory') && line.includes('mech'))!;
    expect(header).toMatch(/mech ms {2}mech ×sem/);
    expect(lines.some((line) => line.startsWith('mech ') && line.includes('real system'))).toBe(true);
    expect(lines.some((line) => line.startsWith('instr ') && line.includes('instrument'))).toBe(true);
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
