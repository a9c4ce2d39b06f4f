/**
 * The report's figure vocabulary, shared by every module that builds a figure's data (figure-data.ts,
 * class-figure.ts): figure ids and titles, points, captions, drawn and omitted figures, run tags, and the small
 * helpers that finish a figure. Pure data, nothing drawn here.
 */
import type { ReportRun } from './read-results.ts';
import type { SummaryRow } from '../results/summary.ts';

export const FIGURE_IDS = ['sharing', 'split', 'classes', 'found', 'cow', 'cpu', 'scale', 'kernel', 'throughput'] as const;
export type FigureId = (typeof FIGURE_IDS)[number];

export const FIGURE_TITLES: Record<FigureId, string> = {
  sharing: 'Shared pages and frames saved over time',
  split: 'Where the frames saved lie: zero pages, within a guest, across guests',
  classes: 'Where sharing comes from: frames saved by page class',
  found: 'How much of content’s savings each strategy finds without scanning',
  cow: 'Cumulative copy-on-write faults over time',
  cpu: 'CPU per tick against guest memory: the mechanism and xme’s instrument',
  scale: 'What the number of guests costs: CPU, first scan, harness memory, time to the first result',
  kernel: 'Kernel code and rodata shareability per run',
  throughput: 'Guest throughput per strategy',
};

/** One mark: a point of a line, a mean with its CI, or a bar. */
export interface FigurePoint {
  /** Which line (or bar) the point belongs to: one line per run × memory × strategy × repetition × panel. */
  series: string;
  /** The legend entry (colour): a strategy, with its run's tag when the report has several runs. */
  legend: string;
  x: number | string;
  y: number;
  /** 95% CI of a mean, when there is one (n ≥ 2). */
  low?: number;
  high?: number;
  /** Column panel (memory size, or run). */
  fx?: string;
  /** Row panel (which figure of several: shared pages, frames saved, …). */
  fy?: string;
}

export interface Caption {
  /** What the figure measures. */
  measures: string;
  units: string;
  /** n: repetitions (and ticks) behind each line or mean. */
  n: string;
  /** How each quantity was measured, from the CSVs' method columns and run.json. */
  method: string[];
  /** The runs the figure's data comes from (run ids, with their tag when there are several). */
  runs: string[];
}

export interface DrawnFigure {
  id: FigureId;
  title: string;
  drawn: true;
  /** lines: values over time; means: mean ± CI against a number; bars: a mean ± CI per category; stacked: parts of a whole per category. */
  kind: 'lines' | 'means' | 'bars' | 'stacked';
  xLabel: string;
  yLabel: string;
  yScale: 'linear' | 'log';
  yDomain?: [number, number];
  points: FigurePoint[];
  /** Distinct series, in order of first appearance: one drawn line (lines, means) or bar (bars) each. */
  series: string[];
  /** Distinct legend entries, in order. */
  legend: string[];
  /** The column and row panels in the order they are drawn (first appearance); empty when not faceted. */
  fxDomain: string[];
  fyDomain: string[];
  caption: Caption;
  /** Short remarks: a CI missing for want of repetitions, a count's kind derived from its method, … */
  notes: string[];
}

export interface OmittedFigure {
  id: FigureId;
  title: string;
  drawn: false;
  /** Why there is nothing to draw. */
  reason: string;
  /** The runs did not set out to measure it (e.g. no guest sweep for the scale figure): no note on the console. */
  notAsked?: boolean;
}

export type FigureData = DrawnFigure | OmittedFigure;

/** A run with the tag that names it in legends when the report has several runs (R1, R2, …; '' for one). */
export interface TaggedRun {
  run: ReportRun;
  tag: string;
}

export function tagRuns(runs: readonly ReportRun[]): TaggedRun[] {
  return runs.map((run, i) => ({ run, tag: runs.length > 1 ? `R${i + 1}` : '' }));
}

export const distinct = <T>(values: Iterable<T>): T[] => [...new Set(values)];
export const withTag = (tag: string, text: string) => (tag ? `${tag} ${text}` : text);
export const runName = ({ run, tag }: TaggedRun) => (tag ? `${tag} = ${run.info.runId}` : run.info.runId);
export const mib = (memory: number) => `${memory} MiB`;
export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function omitted(id: FigureId, reason: string, options: { notAsked?: boolean } = {}): OmittedFigure {
  return { id, title: FIGURE_TITLES[id], drawn: false, reason, ...(options.notAsked ? { notAsked: true } : {}) };
}

export function finish(figure: Omit<DrawnFigure, 'series' | 'legend' | 'title' | 'drawn' | 'fxDomain' | 'fyDomain'>): DrawnFigure {
  const panels = (pick: (p: FigurePoint) => string | undefined) => distinct(figure.points.map(pick).filter((v): v is string => v !== undefined));
  return {
    ...figure,
    title: FIGURE_TITLES[figure.id],
    drawn: true,
    series: distinct(figure.points.map((p) => p.series)),
    legend: distinct(figure.points.map((p) => p.legend)),
    fxDomain: panels((p) => p.fx),
    fyDomain: panels((p) => p.fy),
  };
}

// Summary figures: rows of summary.csv by metric, their CIs, their n and methods.

export function summaryRowsOf(runs: readonly TaggedRun[], metrics: readonly string[]): { r: TaggedRun; row: SummaryRow }[] {
  return runs.flatMap((r) => (r.run.summary ?? []).filter((row) => metrics.includes(row.metric)).map((row) => ({ r, row })));
}

/** Why a summary figure has nothing: no summary.csv, or the metrics are not in it. */
export function noSummaryReason(runs: readonly TaggedRun[], metrics: readonly string[]): string {
  const none = runs.filter((r) => r.run.summary === undefined).map((r) => r.run.info.runId);
  const parts = [`no run's summary.csv has ${metrics.join(' or ')}`];
  if (none.length) parts.push(`no summary.csv in ${none.join(', ')}`);
  return parts.join('; ');
}

export function ci(row: SummaryRow): Pick<FigurePoint, 'low' | 'high'> {
  return row.ci95_low !== undefined && row.ci95_high !== undefined ? { low: row.ci95_low, high: row.ci95_high } : {};
}

/** "n = 3 repetitions per mean; bars: 95% CI" and a note when some means have no CI. */
export function summaryN(rows: readonly SummaryRow[]): { n: string; notes: string[] } {
  const ns = distinct(rows.map((row) => row.n)).sort((a, b) => a - b);
  const noCi = rows.filter((row) => row.ci95_low === undefined || row.ci95_high === undefined).length;
  return {
    n: `n = ${ns.join(', ')} ${ns.length === 1 && ns[0] === 1 ? 'repetition' : 'repetitions'} per mean (each repetition boots fresh guests); error bars: 95% CI (Student t)`,
    notes: noCi ? [`${plural(noCi, 'mean')} without a CI: n = 1 gives no spread (more repetitions: --repetitions).`] : [],
  };
}

export const methodsOf = (rows: readonly { row: SummaryRow }[], metric: string) =>
  distinct(rows.filter((x) => x.row.metric === metric).map((x) => x.row.method)).join(' | ');

/** Whether a figure's means and CIs span more than 20× (all positive): then a log axis keeps the small ones readable. */
export function needsLogAxis(points: readonly FigurePoint[]): boolean {
  const values = points.flatMap((p) => [p.y, p.low ?? p.y, p.high ?? p.y]);
  return values.every((v) => v > 0) && Math.max(...values) / Math.min(...values) >= 20;
}
