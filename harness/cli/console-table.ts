/** The tables printed at the end of a run: the key figures per guest count, memory size and strategy (means). */
import type { SummaryRow } from '../results/summary.ts';
import type { MetricName } from '../results/metrics.ts';
import type { ResultWriter } from '../results/result-writer.ts';
import type { RunEnd } from '../results/run.ts';
import type { SlowdownRow } from '../results/overhead.ts';

type Column = [MetricName, string, (v: number) => string];

const count = (v: number) => Math.round(v).toLocaleString('en');

/** What was shared, per memory size and strategy. */
const SHARING_COLUMNS: Column[] = [
  ['shared_pages', 'shared pages', count],
  ['frames_saved_pct', 'saved %', (v) => v.toFixed(1)],
  ['host_frames_saved', 'host saved', count],
  ['zero_pages_shared', 'zero pages', count],
  ['kernel_code_shareability_pct', 'kcode %', (v) => v.toFixed(2)],
  ['cow_faults', 'CoW faults', (v) => v.toFixed(0)],
  ['workload_ops_per_s', 'guest ops/s', (v) => v.toFixed(0)],
];

/** What it cost per tick, split into the mechanism's part and xme's instrument (sharing/ledger.ts). */
const COST_COLUMNS: Column[] = [
  ['mechanism_cpu_ms', 'mech ms', (v) => v.toFixed(1)],
  ['mechanism_cpu_ratio_vs_semantic', 'mech ×sem', (v) => v.toFixed(1)],
  ['cow_model_cpu_ms', 'CoW model ms', (v) => v.toFixed(2)],
  ['instrument_cpu_ms', 'instr ms', (v) => v.toFixed(1)],
  ['tick_cpu_ms', 'tick ms', (v) => v.toFixed(1)],
  ['tick_cpu_ratio_vs_semantic', 'tick ×sem', (v) => v.toFixed(1)],
  ['scan_cpu_ms', 'scan ms', (v) => v.toFixed(1)],
  ['cpu_ms_per_s', 'CPU ms/s', (v) => v.toFixed(1)],
];

/** With a sweep of the guest count: what the fleet's size costs (scale). */
const SCALE_COLUMNS: Column[] = [
  ['boot_s', 'boot s', (v) => v.toFixed(1)],
  ['first_result_s', 'first result s', (v) => v.toFixed(1)],
  ['first_scan_cpu_ms_per_guest', 'first scan ms/guest', (v) => v.toFixed(1)],
  ['mechanism_cpu_ms_per_guest', 'mech ms/guest', (v) => v.toFixed(2)],
  ['harness_memory_mib', 'harness MiB', (v) => v.toFixed(0)],
];

/** Under the cost table: what its words mean (summary.csv's method column says it in full). */
export const COST_LEGEND = [
  'mech   the sharing mechanism as a real system pays it: scan + byte confirmation + share calls (ksm: ksmd’s CPU)',
  '       + CoW model: CoW faults × the cost of one CoW break measured on this host (run.json cowFaultCost)',
  'instr  xme’s instrument, not paid by a real system: CoW detection by re-read (and frame hashes), residency, RAM copy, KSM observation, page classes’ pause check',
  'tick   as run here: CoW detection + scan + verification (ksm: ksmd); ×sem: ÷ semantic, same repetition; steady state',
];

/** "3 × 256 MiB" (files written before the guests column: "256 MiB"). */
const sizeOf = (row: SummaryRow) => `${row.guests !== undefined ? `${row.guests} × ` : ''}${row.memory_mib} MiB`;

function table(rows: SummaryRow[], columns: Column[]): string {
  const keys = [...new Set(rows.map((r) => `${sizeOf(r)}\u0000${r.strategy}`))];
  const header = [rows.some((r) => r.guests !== undefined) ? 'guests × memory' : 'memory', 'strategy', ...columns.map(([, title]) => title)];
  const body = keys.map((key) => {
    const [size, strategy] = key.split('\u0000') as [string, string];
    const cells = columns.map(([metric, , format]) => {
      const row = rows.find((r) => sizeOf(r) === size && r.strategy === strategy && r.metric === metric);
      return row && Number.isFinite(row.mean) ? format(row.mean) : '–';
    });
    return [size, strategy, ...cells];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(format)].join('\n');
}

/**
 * Tables of means per guest count, memory size and strategy: what was shared, then what it cost per tick (with
 * its legend), and, when the run swept the guest count, what the fleet's size cost.
 */
export function consoleTable(rows: SummaryRow[]): string {
  const tables = [table(rows, SHARING_COLUMNS), '', 'CPU per tick: mechanism and instrument', table(rows, COST_COLUMNS), ...COST_LEGEND];
  if (new Set(rows.map((r) => r.guests)).size > 1) tables.push('', 'Scale: what the number of guests costs', table(rows, SCALE_COLUMNS));
  return tables.join('\n');
}

/** One line per strategy: the guests' slowdown against the baseline, with its 95% CI. */
export function slowdownLines(rows: readonly SlowdownRow[]): string {
  const ci = (row: SlowdownRow) => (row.ci95_low !== undefined ? ` [95% CI ${row.ci95_low.toFixed(1)}, ${row.ci95_high!.toFixed(1)}]` : ' (one pair: no CI)');
  return rows
    .map(
      (row) =>
        `${row.guests !== undefined ? `${row.guests} × ` : ''}${row.memory_mib} MiB  ${row.strategy}: guest workload ${row.slowdown_pct >= 0 ? 'slowdown' : 'speed-up'} ${Math.abs(row.slowdown_pct).toFixed(1)} %${ci(row)} vs ${row.baseline}, n=${row.n} (${row.ops_per_s.toFixed(0)} vs ${row.baseline_ops_per_s.toFixed(0)} ops/s)`,
    )
    .join('\n');
}

/** Prints the table once the run has a summary with figures (an interrupted run's too; a failed one has none). */
export class ConsoleTableWriter implements ResultWriter {
  constructor(private readonly write: (text: string) => void) {}

  end(run: RunEnd): void {
    if (run.summary?.length) this.write(`\n${consoleTable(run.summary)}\n`);
    if (run.overhead?.length) this.write(`\n${slowdownLines(run.overhead)}\n(overhead.csv has the figures and how they were measured)\n`);
  }
}
