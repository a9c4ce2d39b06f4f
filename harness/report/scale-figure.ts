/**
 * What the fleet's size costs (a run that sweeps the guest count, scenario `scale`): from summary.csv, per
 * strategy against the number of guests scored together, the mechanism's CPU per tick, the same per guest,
 * and the first scan per guest; below, for the whole repetition (one line, not per strategy: the same on every
 * strategy's row), the harness's own memory and the time from boot to the first result. Means ± 95% CI.
 */
import type { SummaryRow } from '../results/summary.ts';
import {
  ci,
  distinct,
  finish,
  methodsOf,
  mib,
  needsLogAxis,
  noSummaryReason,
  omitted,
  runName,
  summaryN,
  summaryRowsOf,
  withTag,
  type FigureData,
  type FigurePoint,
  type TaggedRun,
} from './figure-kit.ts';

/** Per strategy: [metric, panel]. */
const STRATEGY_PANELS = [
  ['mechanism_cpu_ms', 'mechanism CPU per tick'],
  ['mechanism_cpu_ms_per_guest', 'mechanism CPU per tick per guest'],
  ['first_scan_cpu_ms_per_guest', 'first scan per guest'],
] as const;
/** The repetition's, whatever the strategy: [metric, panel]. */
const RUN_PANELS = [
  ['harness_memory_mib', "the harness's own memory (peak)"],
  ['first_result_s', 'boot to the first result'],
] as const;
const ALL_STRATEGIES = 'whole run (all strategies)';

/** The runs (and their rows) that swept the guest count: a figure against one count says nothing. */
function sweeping(runs: readonly TaggedRun[]): TaggedRun[] {
  return runs.filter((r) => distinct((r.run.summary ?? []).map((row) => row.guests).filter((g) => g !== undefined)).length > 1);
}

export function scaleFigure(runs: readonly TaggedRun[]): FigureData {
  const swept = sweeping(runs);
  if (!swept.length) return omitted('scale', 'no run swept the guest count (a scenario with "guests": [2, 8, 32], e.g. scale)', { notAsked: true });
  const metrics = [...STRATEGY_PANELS, ...RUN_PANELS].map(([metric]) => metric as string);
  // Panels top to bottom in the order above.
  const rows = summaryRowsOf(swept, metrics)
    .filter(({ row }) => row.guests !== undefined)
    .sort((a, b) => metrics.indexOf(a.row.metric) - metrics.indexOf(b.row.metric));
  if (!rows.length) return omitted('scale', noSummaryReason(swept, metrics));
  const memories = distinct(rows.map(({ row }) => row.memory_mib));
  const panelOf = (metric: string) => [...STRATEGY_PANELS, ...RUN_PANELS].find(([m]) => m === metric)![1];
  const firstStrategy = new Map(swept.map((r) => [r, r.run.summary?.[0]?.strategy]));
  const points: FigurePoint[] = [];
  const drawn: { r: TaggedRun; row: SummaryRow }[] = [];
  for (const { r, row } of rows) {
    const wholeRun = RUN_PANELS.some(([metric]) => metric === row.metric);
    if (wholeRun && row.strategy !== firstStrategy.get(r)) continue; // the same figure on every strategy's row: drawn once
    drawn.push({ r, row });
    const legend = withTag(r.tag, wholeRun ? ALL_STRATEGIES : row.strategy);
    points.push({
      series: [r.tag, row.memory_mib, wholeRun ? ALL_STRATEGIES : row.strategy, row.metric].join('|'),
      legend,
      x: row.guests!,
      y: row.mean,
      ...ci(row),
      fy: `${panelOf(row.metric)} (${row.unit})`,
      ...(memories.length > 1 ? { fx: mib(row.memory_mib) } : {}),
    });
  }
  const { n, notes } = summaryN(drawn.map((x) => x.row));
  notes.push('Guest counts evenly spaced: a sweep that doubles reads as a log2 axis.');
  // The panels share one y axis (ms, MiB, s): a log axis keeps a per-guest figure of 0.1 ms readable beside 1,000 MiB.
  const log = needsLogAxis(points);
  if (log) notes.push('Logarithmic y axis, shared by the panels: their figures differ by more than 20×.');
  return finish({
    id: 'scale',
    kind: 'means',
    xLabel: 'guests scored together (counts evenly spaced)',
    yLabel: 'per panel',
    yScale: log ? 'log' : 'linear',
    points,
    caption: {
      measures:
        'what the number of guests costs, each count booted and scored in turn in one run: per strategy the mechanism’s CPU per tick (steady state), the same per guest, and the first scan per guest (semantic: locating and checking each kernel); for the whole repetition the harness’s own peak memory and the time from the start of the boot to the end of the first scored tick',
      units: distinct(drawn.map((x) => x.row.unit)).join(', '),
      n,
      method: metrics.map((metric) => `${metric}: ${methodsOf(drawn, metric) || 'not measured'}`),
      runs: distinct(drawn.map((x) => x.r)).map(runName),
    },
    notes,
  });
}
