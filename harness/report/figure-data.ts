/**
 * What each figure of the report shows, as plain data (pure: tested without drawing): its points and series,
 * and a caption that says what is measured, in which unit, how (the method, cow_method and cpu_method cells of
 * the CSVs, and run.json), over how many repetitions (n) and from which runs. A figure whose data is absent
 * from every run is not drawn: it comes back `drawn: false` with the reason.
 */
import { METRICS, type MetricName } from '../results/metrics.ts';
import type { ReportRun, TotalsSample } from './read-results.ts';
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
  plural,
  runName,
  summaryN,
  summaryRowsOf,
  tagRuns,
  withTag,
  type FigureData,
  type FigurePoint,
  type TaggedRun,
} from './figure-kit.ts';
import { classesFigure, foundFigure } from './class-figure.ts';
import { scaleFigure } from './scale-figure.ts';

export * from './figure-kit.ts';

/** Every figure, in the report's order: drawn or omitted with a reason. */
export function buildFigures(runs: readonly ReportRun[]): FigureData[] {
  const tagged = tagRuns(runs);
  return [
    sharingFigure(tagged),
    splitFigure(tagged),
    classesFigure(tagged),
    foundFigure(tagged),
    cowFigure(tagged),
    cpuFigure(tagged),
    scaleFigure(tagged),
    kernelFigure(tagged),
    throughputFigure(tagged),
  ];
}

/** Why no run has tick samples: which runs have no samples.csv, or an empty one. */
function noSamplesReason(runs: readonly TaggedRun[]): string {
  const none = runs.filter((r) => r.run.samples === undefined).map((r) => r.run.info.runId);
  const empty = runs.filter((r) => r.run.samples?.length === 0).map((r) => r.run.info.runId);
  const parts = [];
  if (none.length) parts.push(`no samples.csv in ${none.join(', ')}`);
  if (empty.length) parts.push(`samples.csv has no rows in ${empty.join(', ')} (stopped before its first tick)`);
  return parts.join('; ');
}

/** The method of a summary metric as the runs' summary.csv says it (distinct texts), else xme's own definition. */
function summaryMethod(runs: readonly TaggedRun[], metric: MetricName): string {
  const said = distinct(
    runs.flatMap((r) =>
      (r.run.summary ?? [])
        .filter((row) => row.metric === metric)
        .map((row) => row.method)
        .filter(Boolean),
    ),
  );
  return said.length ? said.join(' | ') : `${METRICS[metric].method} (xme's definition: no summary.csv says it)`;
}

/** "1 repetition × 11 ticks" per memory size of a run's samples. */
function timeSeriesN(runs: readonly TaggedRun[], pick: (s: TotalsSample) => number | undefined): string {
  return runs
    .map((r) => {
      const samples = (r.run.samples ?? []).filter((s) => pick(s) !== undefined);
      const reps = Math.max(
        ...distinct(samples.map((s) => s.memory_mib)).map((m) => distinct(samples.filter((s) => s.memory_mib === m).map((s) => s.repetition)).length),
      );
      const ticks = Math.max(
        ...distinct(samples.map((s) => `${s.memory_mib}/${s.repetition}/${s.strategy}`)).map(
          (k) => samples.filter((s) => `${s.memory_mib}/${s.repetition}/${s.strategy}` === k).length,
        ),
      );
      return withTag(r.tag, `${plural(reps, 'repetition')} per memory size × ${plural(ticks, 'tick')}`);
    })
    .join('; ');
}

/** Lines over time of one or more tick-sample quantities (one row panel each when several). */
function timeFigure(
  runs: readonly TaggedRun[],
  quantities: { label: string; pick: (s: TotalsSample) => number | undefined }[],
  legendOf: (r: TaggedRun, s: TotalsSample) => string,
): FigurePoint[] {
  const points: FigurePoint[] = [];
  const memories = distinct(runs.flatMap((r) => (r.run.samples ?? []).map((s) => s.memory_mib)));
  for (const quantity of quantities) {
    for (const r of runs) {
      for (const s of r.run.samples ?? []) {
        const y = quantity.pick(s);
        if (y === undefined) continue;
        points.push({
          series: [r.tag, s.guests, s.memory_mib, s.strategy, s.repetition, quantity.label].join('|'), // a guest sweep restarts t_s per count
          legend: legendOf(r, s),
          x: s.t_s,
          y,
          ...(memories.length > 1 ? { fx: mib(s.memory_mib) } : {}),
          ...(quantities.length > 1 ? { fy: quantity.label } : {}),
        });
      }
    }
  }
  return points;
}

/** (1) shared pages, frames saved and (when measured) host frames saved over time, per strategy. */
export function sharingFigure(runs: readonly TaggedRun[]): FigureData {
  const withSamples = runs.filter((r) => r.run.samples?.length);
  if (!withSamples.length) return omitted('sharing', noSamplesReason(runs));
  const candidates: { metric: MetricName; label: string; pick: (s: TotalsSample) => number | undefined }[] = [
    { metric: 'shared_pages', label: 'shared pages', pick: (s) => s.shared_pages },
    { metric: 'frames_saved', label: 'frames saved', pick: (s) => s.frames_saved },
    { metric: 'host_frames_saved', label: 'host frames saved', pick: (s) => s.host_frames_saved },
  ];
  const quantities = candidates.filter((q) => withSamples.some((r) => r.run.samples!.some((s) => q.pick(s) !== undefined)));
  const points = timeFigure(withSamples, quantities, (r, s) => withTag(r.tag, s.strategy));
  if (!points.length) return omitted('sharing', 'samples.csv has no shared_pages, frames_saved or host_frames_saved values');
  const modes = distinct(withSamples.flatMap((r) => r.run.samples!.map((s) => s.sharing_mode)).filter(Boolean));
  const modeTexts = distinct(withSamples.map((r) => r.run.info.sharingMode).filter((m): m is string => !!m));
  const notes = [];
  if (!quantities.some((q) => q.metric === 'host_frames_saved'))
    notes.push('host_frames_saved is not in these samples (the backend cannot tell which pages the host backs): not drawn.');
  notes.push(...refusals(withSamples));
  return finish({
    id: 'sharing',
    kind: 'lines',
    xLabel: 'time since the repetition’s first tick (s)',
    yLabel: 'pages',
    yScale: 'linear',
    points,
    caption: {
      measures: `${quantities.map((q) => q.label).join(', ')} of all guests, per strategy, at each tick; one line per strategy and repetition`,
      units: 'pages (4 KiB guest pages)',
      n: timeSeriesN(withSamples, (s) => s.shared_pages),
      method: [
        ...quantities.map((q) => `${q.label} (${q.metric}): ${summaryMethod(withSamples, q.metric)}`),
        `sharing mode (sharing_mode): ${modes.join(', ') || 'not recorded'}${modeTexts.length ? ` — ${modeTexts.join(' | ')}` : ''}`,
      ],
      runs: withSamples.map(runName),
    },
    notes,
  });
}

/** "semantic refused to share at 3 of 3 ticks (refused: …)": why a strategy's line stays at 0. */
function refusals(runs: readonly TaggedRun[]): string[] {
  return runs.flatMap((r) =>
    distinct(r.run.samples!.map((s) => s.strategy)).flatMap((strategy) => {
      const rows = r.run.samples!.filter((s) => s.strategy === strategy);
      const refused = rows.filter((s) => s.status.startsWith('refused'));
      if (!refused.length) return [];
      const reason = refused[0]!.status.length > 200 ? `${refused[0]!.status.slice(0, 200)}…` : refused[0]!.status;
      return [`${withTag(r.tag, strategy)} refused to share at ${refused.length} of ${rows.length} ticks (samples.csv status; the first: ${reason}).`];
    }),
  );
}

/** What a CoW method's count is when samples.csv predates the cow_count column. */
const COUNT_OF_METHOD: Record<string, string> = { 'content-reread': 'lower bound', hypervisor: 'upper bound' };

/** The parts of frames_saved (summary.csv), in stacking order, with their legend. */
const SPLIT_PARTS = [
  ['frames_saved_zero', 'zero pages'],
  ['frames_saved_within_guest', 'within a guest'],
  ['frames_saved_across_guests', 'across guests'],
] as const;

/** (1b) frames saved split by where the sharing lies, stacked per strategy: a panel per run and memory size. */
export function splitFigure(runs: readonly TaggedRun[]): FigureData {
  const metrics = SPLIT_PARTS.map(([metric]) => metric);
  const rows = summaryRowsOf(runs, metrics);
  if (!rows.length)
    return omitted('split', `${noSummaryReason(runs, metrics)} (a ledger that knows which guest each shared page is in measures it: not Xen's counters)`);
  const several = runs.length > 1;
  const memories = distinct(rows.map((x) => x.row.memory_mib));
  const points: FigurePoint[] = rows.map(({ r, row }) => {
    const fx = [several ? r.tag : '', memories.length > 1 || several ? mib(row.memory_mib) : ''].filter(Boolean).join(' · ');
    return {
      series: [r.tag, row.memory_mib, row.strategy, row.metric].join('|'),
      legend: SPLIT_PARTS.find(([metric]) => metric === row.metric)![1],
      x: row.strategy,
      y: row.mean,
      ...(fx ? { fx } : {}),
    };
  });
  const { n } = summaryN(rows.map((x) => x.row));
  const used = runs.filter((r) => rows.some((x) => x.r === r));
  return finish({
    id: 'split',
    kind: 'stacked',
    xLabel: 'strategy',
    yLabel: 'frames saved (pages)',
    yScale: 'linear',
    points,
    caption: {
      measures:
        "frames saved at the last tick, split by where the sharing lies (Barker et al., ATC'12): a frame backing m pages saves m − 1 — all of them “zero pages” when its bytes are all zero; otherwise, with its pages in k guests, k − 1 “across guests” and m − k “within a guest”; the three add up to frames_saved",
      units: 'guest pages (4 KiB); mean over repetitions',
      n,
      method: metrics.map((m) => `${m}: ${methodsOf(rows, m) || 'not measured'}`),
      runs: used.map(runName),
    },
    notes: [],
  });
}

/** (2) cumulative CoW faults over time per strategy, with the CoW method and what its count bounds. */
export function cowFigure(runs: readonly TaggedRun[]): FigureData {
  const withSamples = runs.filter((r) => r.run.samples?.some((s) => s.cow_faults_total !== undefined));
  if (!withSamples.length) return omitted('cow', noSamplesReason(runs) || 'samples.csv has no cow_faults_total values');
  let derived = false;
  const countOf = (s: TotalsSample) => {
    if (s.cow_count) return s.cow_count;
    derived = true;
    return COUNT_OF_METHOD[s.cow_method ?? ''] ?? 'count kind not recorded';
  };
  const points = timeFigure(withSamples, [{ label: 'CoW faults', pick: (s) => s.cow_faults_total }], (r, s) =>
    withTag(r.tag, `${s.strategy} (${s.cow_method || 'method not recorded'}, ${countOf(s)})`),
  );
  const methods = distinct(withSamples.flatMap((r) => r.run.samples!.map((s) => `${s.cow_method || 'not recorded'}: ${countOf(s)}`)));
  const descriptions = distinct(withSamples.map((r) => r.run.info.cowMethod).filter((m): m is string => !!m));
  const notes = derived ? ['samples.csv has no cow_count column (written before it existed): lower or upper bound is taken from the CoW method.'] : [];
  return finish({
    id: 'cow',
    kind: 'lines',
    xLabel: 'time since the repetition’s first tick (s)',
    yLabel: 'CoW faults (cumulative)',
    yScale: 'linear',
    points,
    caption: {
      measures:
        'copy-on-write faults of all guests since the repetition began (cow_faults_total): writes by a guest to a page in shared state (run.json cowDefinition); one line per strategy and repetition',
      units: 'faults',
      n: timeSeriesN(withSamples, (s) => s.cow_faults_total),
      method: [`CoW method (cow_method) and count (cow_count): ${methods.join('; ')}`, ...descriptions.map((d) => `run.json cowMethod: ${d}`)],
      runs: withSamples.map(runName),
    },
    notes,
  });
}

/** Summary rows of some metrics, with their run. */

/**
 * The CPU figure's panels, top to bottom: the tick split (sharing/ledger.ts, "COST: MECHANISM AND INSTRUMENT")
 * — what the mechanism costs as a real system would pay it, and what xme's instrument costs — then the whole
 * tick as run and the scan alone. Results written before the split have only the last two.
 */
const CPU_PANELS = [
  ['mechanism_cpu_ms', 'mechanism'],
  ['instrument_cpu_ms', 'instrument'],
  ['tick_cpu_ms', 'whole tick'],
  ['scan_cpu_ms', 'scan'],
] as const;

/** (3) steady-state CPU per tick — the mechanism's, the instrument's, the whole tick's — and per scan, against guest memory size, mean with 95% CI. */
/** Per run, the rows of its largest guest count: against memory size, several counts would fall on one point. */
function atLargestFleet(rows: { r: TaggedRun; row: SummaryRow }[]): { r: TaggedRun; row: SummaryRow }[] {
  const largest = new Map<TaggedRun, number>();
  for (const { r, row } of rows) if (row.guests !== undefined) largest.set(r, Math.max(largest.get(r) ?? 0, row.guests));
  return rows.filter(({ r, row }) => row.guests === undefined || row.guests === largest.get(r));
}

export function cpuFigure(runs: readonly TaggedRun[]): FigureData {
  const metrics = CPU_PANELS.map(([metric]) => metric);
  const order = (metric: string) => metrics.indexOf(metric as (typeof metrics)[number]);
  const all = summaryRowsOf(runs, metrics);
  const rows = atLargestFleet(all).sort((a, b) => order(a.row.metric) - order(b.row.metric));
  if (!rows.length) return omitted('cpu', noSummaryReason(runs, metrics));
  const panel = (row: SummaryRow) => `${CPU_PANELS[order(row.metric)]![1]} (${row.unit})`;
  const points: FigurePoint[] = rows.map(({ r, row }) => ({
    series: [r.tag, row.strategy, row.metric].join('|'),
    legend: withTag(r.tag, row.strategy),
    x: row.memory_mib,
    y: row.mean,
    ...ci(row),
    fy: panel(row),
  }));
  const log = needsLogAxis(points);
  const { n, notes } = summaryN(rows.map((x) => x.row));
  const cpuMethods = distinct([
    ...runs.flatMap((r) => (r.run.samples ?? []).map((s) => s.cpu_method).filter((m): m is string => !!m)),
    ...runs.map((r) => r.run.info.cpuMethod).filter((m): m is string => !!m),
  ]);
  const used = runs.filter((r) => rows.some((x) => x.r === r));
  const split = rows.some((x) => x.row.metric === 'mechanism_cpu_ms');
  if (!split) notes.push('These results predate the split of a tick into mechanism and instrument: only the whole tick and the scan are drawn.');
  if (rows.some((x) => x.row.metric === 'mechanism_cpu_ms' && /CoW handling NOT included/.test(x.row.method ?? '')))
    notes.push('In some runs no per-fault CoW cost was measured (run.json cowFaultCost says why): their mechanism leaves out the CoW handling.');
  if (log) notes.push('Logarithmic y axis: the strategies differ by more than 20×.');
  if (rows.length < all.length) notes.push('A run that swept the guest count is drawn at its largest count here; the scale figure has every count.');
  return finish({
    id: 'cpu',
    kind: 'means',
    xLabel: 'guest memory per guest (MiB; sizes evenly spaced)',
    yLabel: 'CPU ms',
    yScale: log ? 'log' : 'linear',
    points,
    caption: {
      measures:
        'CPU per tick, steady state (ticks after the first), against the guests’ memory size, split into the mechanism (mechanism_cpu_ms: what a real system doing this sharing pays — scan, byte confirmation, share calls, and the CoW handling modelled as faults × the cost of one CoW fault measured on this host) and xme’s instrument (instrument_cpu_ms: what xme pays to watch it on QEMU and a real system does not — CoW detection by re-reading every shared page, the residency snapshot, the RAM copy, KSM’s observation); below, the whole tick as run (tick_cpu_ms: CoW detection + scan + byte verification) and the scan alone (scan_cpu_ms)',
      units: distinct(rows.map((x) => x.row.unit)).join(', '),
      n,
      method: [
        ...metrics.map((metric) => `${metric}: ${methodsOf(rows, metric) || 'not measured'}`),
        ...(split
          ? [`cow_model_cpu_ms (part of the mechanism): ${methodsOf(summaryRowsOf(runs, ['cow_model_cpu_ms']), 'cow_model_cpu_ms') || 'not measured'}`]
          : []),
        ...cpuMethods.map((m) => `cpu_method: ${m}`),
      ],
      runs: used.map(runName),
    },
    notes,
  });
}

const KASLR = (kaslr: boolean | undefined) => (kaslr === undefined ? 'KASLR not recorded' : kaslr ? 'KASLR on' : 'nokaslr');

/** (4) kernel code and rodata shareability per run, labelled by the run's KASLR setting. */
export function kernelFigure(runs: readonly TaggedRun[]): FigureData {
  const metrics = ['kernel_code_shareability_pct', 'kernel_rodata_shareability_pct'];
  const rows = summaryRowsOf(runs, metrics);
  if (!rows.length) return omitted('kernel', `${noSummaryReason(runs, metrics)} (measured by the semantic strategy; it refused or did not run)`);
  const memories = distinct(rows.map((x) => x.row.memory_mib));
  const part = (row: SummaryRow) => (row.metric === 'kernel_code_shareability_pct' ? 'kernel code' : 'kernel rodata');
  const points: FigurePoint[] = rows.map(({ r, row }) => ({
    series: [r.tag, row.memory_mib, row.strategy, row.metric].join('|'),
    legend: part(row),
    x: `${part(row).replace('kernel ', '')}\n${row.strategy}`,
    y: row.mean,
    ...ci(row),
    fx: [r.tag, KASLR(r.run.info.kaslr), memories.length > 1 ? mib(row.memory_mib) : ''].filter(Boolean).join(' · '),
  }));
  const { n, notes } = summaryN(rows.map((x) => x.row));
  const used = runs.filter((r) => rows.some((x) => x.r === r));
  return finish({
    id: 'kernel',
    kind: 'bars',
    xLabel: 'part of the kernel image, strategy that measured it',
    yLabel: '% of pages identical in all guests',
    yScale: 'linear',
    yDomain: [0, 100],
    points,
    caption: {
      measures:
        'share of the kernel’s code pages [_text, _etext) and read-only data pages [__start_rodata, __end_rodata) that are byte-identical in all guests, at the last tick, per run (labelled by its run.json scenario.kaslr)',
      units: '% of the range’s pages',
      n,
      method: metrics.map((m) => `${m}: ${methodsOf(rows, m) || 'not measured'}`),
      runs: used.map((r) => `${runName(r)} (${KASLR(r.run.info.kaslr)}, ${r.run.info.kernel ?? 'kernel not recorded'})`),
    },
    notes,
  });
}

/** (5) guest throughput (workload_ops_per_s) per strategy, when the workload reports operations. */
export function throughputFigure(runs: readonly TaggedRun[]): FigureData {
  const all = summaryRowsOf(runs, ['workload_ops_per_s']);
  if (!all.length) return omitted('throughput', noSummaryReason(runs, ['workload_ops_per_s']));
  if (all.every((x) => x.row.mean === 0)) {
    const workloads = distinct(runs.map((r) => r.run.info.workload ?? 'not recorded'));
    return omitted('throughput', `workload_ops_per_s is 0 in every row: the guests' workload (${workloads.join(', ')}) reported no operations`);
  }
  // A run whose workload reports no operations (idle guests) has nothing to draw: it is named, not drawn as 0.
  const silent = runs.filter((r) => all.some((x) => x.r === r) && all.filter((x) => x.r === r).every((x) => x.row.mean === 0));
  const rows = all.filter((x) => !silent.includes(x.r));
  const memories = distinct(rows.map((x) => x.row.memory_mib));
  const several = distinct(rows.map((x) => x.r.tag)).length > 1;
  // One panel per run (and memory size): strategies of one run side by side, runs apart (their workloads differ).
  const points: FigurePoint[] = rows.map(({ r, row }) => {
    const panel = [several ? r.tag : '', memories.length > 1 ? mib(row.memory_mib) : ''].filter(Boolean).join(' · ');
    return {
      series: [r.tag, row.memory_mib, row.strategy].join('|'),
      legend: withTag(r.tag, row.strategy),
      x: row.strategy,
      y: row.mean,
      ...ci(row),
      ...(panel ? { fx: panel } : {}),
    };
  });
  const { n, notes } = summaryN(rows.map((x) => x.row));
  if (silent.length) notes.push(`not drawn: ${silent.map((r) => r.tag).join(', ')} (its workload reported no operations: workload_ops_per_s is 0)`);
  const used = runs.filter((r) => rows.some((x) => x.r === r));
  return finish({
    id: 'throughput',
    kind: 'bars',
    xLabel: 'strategy',
    yLabel: 'guest ops/s',
    yScale: 'linear',
    points,
    caption: {
      measures: `the guests’ workload throughput while each strategy scored them (workload ${distinct(used.map((r) => r.run.info.workload ?? 'not recorded')).join(', ')}); guests are paused while all strategies score them, so the strategies share one guest clock`,
      units: distinct(rows.map((x) => x.row.unit)).join(', '),
      n,
      method: [`workload_ops_per_s: ${methodsOf(rows, 'workload_ops_per_s')}`],
      runs: used.map(runName),
    },
    notes,
  });
}

/** Every summary.csv row of every run, for the report's table. */
export function summaryTable(runs: readonly ReportRun[]): { tag: string; runId: string; row: SummaryRow }[] {
  return tagRuns(runs).flatMap(({ run, tag }) => (run.summary ?? []).map((row) => ({ tag, runId: run.info.runId, row })));
}
