/** The table printed at the end of a run: the key figures per memory size and strategy (means). */
import type { SummaryRow } from '../summary.ts';
import type { MetricName } from '../metrics.ts';
import type { ResultWriter, RunEnd } from './result-writer.ts';

const COLUMNS: [MetricName, string, (v: number) => string][] = [
  ['shared_pages', 'shared pages', (v) => Math.round(v).toLocaleString('en')],
  ['frames_saved_pct', 'saved %', (v) => v.toFixed(1)],
  ['host_frames_saved', 'host saved', (v) => Math.round(v).toLocaleString('en')],
  ['zero_pages_shared', 'zero pages', (v) => Math.round(v).toLocaleString('en')],
  ['kernel_code_shareability_pct', 'kcode %', (v) => v.toFixed(2)],
  ['cow_faults', 'CoW faults', (v) => v.toFixed(0)],
  ['scan_cpu_ms', 'scan ms', (v) => v.toFixed(1)],
  ['scan_cpu_ratio_vs_semantic', 'scan ×sem', (v) => v.toFixed(1)],
  ['tick_cpu_ms', 'tick ms', (v) => v.toFixed(1)],
  ['tick_cpu_ratio_vs_semantic', 'tick ×sem', (v) => v.toFixed(1)],
  ['workload_ops_per_s', 'guest ops/s', (v) => v.toFixed(0)],
];

export function consoleTable(rows: SummaryRow[]): string {
  const keys = [...new Set(rows.map((r) => `${r.memory_mib} MiB\u0000${r.strategy}`))];
  const header = ['memory', 'strategy', ...COLUMNS.map(([, title]) => title)];
  const body = keys.map((key) => {
    const [memory, strategy] = key.split('\u0000') as [string, string];
    const cells = COLUMNS.map(([metric, , format]) => {
      const row = rows.find((r) => `${r.memory_mib} MiB` === memory && r.strategy === strategy && r.metric === metric);
      return row && Number.isFinite(row.mean) ? format(row.mean) : '–';
    });
    return [memory, strategy, ...cells];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const format = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [format(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(format)].join('\n');
}

/** Prints the table once the run has a summary with figures (an interrupted run's too; a failed one has none). */
export class ConsoleTableWriter implements ResultWriter {
  constructor(private readonly write: (text: string) => void) {}

  end(run: RunEnd): void {
    if (run.summary?.length) this.write(`\n${consoleTable(run.summary)}\n`);
  }
}
