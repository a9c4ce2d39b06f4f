/**
 * Where sharing comes from (scenarios/README.md, "Where sharing comes from"), from samples.csv's attribution
 * columns at each repetition's last tick with classes:
 *  - classes: every strategy's frames saved, stacked by page class (saved_*_frames), its reclaimed free frames
 *    stacked apart on top ("free, reclaimed apart"), one bar per strategy, a panel per run and memory size;
 *  - found: for each strategy but content, content_saved_found_frames as a percentage of content's frames_saved
 *    at the same tick: how much of what a full content scan saves the strategy reaches without scanning.
 * Means over repetitions; no CI (the parts of a stack have none of their own).
 */
import { SAVED_CLASSES, type SavedClass } from '../introspection/saved-by-class.ts';
import type { SampleRow } from '../results/samples.ts';
import { distinct, finish, mib, omitted, plural, runName, type FigureData, type FigurePoint, type TaggedRun } from './figure-kit.ts';

const CLASS_LEGEND: Record<SavedClass, string> = {
  free: 'free',
  pagecache: 'page cache',
  shmem: 'shmem',
  anon: 'anonymous',
  slab: 'slab',
  pagetable: 'page table',
  kernel_text: 'kernel text',
  kernel_rodata: 'kernel rodata',
  kernel_data: 'kernel data',
  module_text: 'module text',
  other: 'other / unknown',
};
const RECLAIMED = 'free, reclaimed apart';
const UNLOCATED = 'not located (KSM zero pages)';

const savedColumn = (name: SavedClass) => `saved_${name}_frames` as const;
const hasClasses = (s: SampleRow) => s.saved_free_frames !== undefined;

/** Each (memory, repetition, strategy)'s last tick that has classes. */
function lastAttributedTicks(samples: readonly SampleRow[]): SampleRow[] {
  const last = new Map<string, SampleRow>();
  for (const s of samples) {
    if (!hasClasses(s)) continue;
    const key = `${s.memory_mib}|${s.repetition}|${s.strategy}`;
    const known = last.get(key);
    if (!known || s.tick > known.tick) last.set(key, s);
  }
  return [...last.values()];
}

const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/** Panel label of a run and memory size: the run's tag when several, the memory when several. */
function panelOf(r: TaggedRun, memory: number, several: boolean, memories: number): string {
  return [several ? r.tag : '', memories > 1 || several ? mib(memory) : ''].filter(Boolean).join(' · ');
}

export function classesFigure(runs: readonly TaggedRun[]): FigureData {
  const used = runs.map((r) => ({ r, last: lastAttributedTicks(r.run.samples ?? []) })).filter((x) => x.last.length > 0);
  if (!used.length)
    return omitted('classes', 'no tick had page classes (a strategy that reads them, e.g. semantic-union, or classification for attribution only, gives them)');
  const several = runs.length > 1;
  const points: FigurePoint[] = [];
  let repetitions = 0;
  for (const { r, last } of used) {
    const memories = distinct(last.map((s) => s.memory_mib));
    for (const memory of memories) {
      for (const strategy of distinct(last.filter((s) => s.memory_mib === memory).map((s) => s.strategy))) {
        const rows = last.filter((s) => s.memory_mib === memory && s.strategy === strategy);
        repetitions = Math.max(repetitions, rows.length);
        const fx = panelOf(r, memory, several, memories.length);
        const part = (legend: string, pick: (s: SampleRow) => number | undefined) => {
          const values = rows.map(pick).filter((v): v is number => v !== undefined);
          if (!values.length || values.every((v) => v === 0)) return;
          points.push({ series: [r.tag, memory, strategy, legend].join('|'), legend, x: strategy, y: mean(values), ...(fx ? { fx } : {}) });
        };
        for (const name of SAVED_CLASSES) part(CLASS_LEGEND[name], (s) => s[savedColumn(name)]);
        part(UNLOCATED, (s) => s.saved_unlocated_frames);
        part(RECLAIMED, (s) => s.reclaimed_free_pages);
      }
    }
  }
  return finish({
    id: 'classes',
    kind: 'stacked',
    xLabel: 'strategy',
    yLabel: 'frames saved (pages)',
    yScale: 'linear',
    points,
    caption: {
      measures:
        'frames saved at the last tick with page classes, by the class of each saved page in its own guest (a frame backing m pages saves m − 1; its keeper, the page with the lowest guest and frame number, is not counted), so the classes add up to frames_saved; free frames reclaimed by semantic-free and semantic-union are stacked apart on top: they are not shared, never byte-verified',
      units: 'guest pages (4 KiB); mean over repetitions',
      n: `${plural(repetitions, 'repetition')} at most per bar`,
      method: [
        "classes: the tick's page classification (harness/introspection/page-classes.ts), taken while the guests are paused, before any strategy scores; the attribution is xme's instrument (attribution_cpu_ms)",
        'saved_*_frames, saved_unlocated_frames, reclaimed_free_pages: samples.csv (scenarios/README.md, "Where sharing comes from")',
      ],
      runs: used.map(({ r }) => runName(r)),
    },
    notes: [],
  });
}

export function foundFigure(runs: readonly TaggedRun[]): FigureData {
  const several = runs.length > 1;
  const points: FigurePoint[] = [];
  const usedRuns: TaggedRun[] = [];
  let repetitions = 0;
  for (const r of runs) {
    const samples = r.run.samples ?? [];
    const memories = distinct(samples.map((s) => s.memory_mib));
    const content = new Map(samples.filter((s) => s.strategy === 'content').map((s) => [`${s.memory_mib}|${s.repetition}|${s.tick}`, s.frames_saved]));
    const last = lastAttributedTicks(samples).filter((s) => s.content_saved_found_frames !== undefined);
    for (const memory of memories) {
      for (const strategy of distinct(last.filter((s) => s.memory_mib === memory).map((s) => s.strategy))) {
        const shares = last
          .filter((s) => s.memory_mib === memory && s.strategy === strategy)
          .flatMap((s) => {
            const saved = content.get(`${s.memory_mib}|${s.repetition}|${s.tick}`);
            return saved ? [(100 * s.content_saved_found_frames!) / saved] : [];
          });
        if (!shares.length) continue;
        repetitions = Math.max(repetitions, shares.length);
        const fx = panelOf(r, memory, several, memories.length);
        points.push({ series: [r.tag, memory, strategy].join('|'), legend: strategy, x: strategy, y: mean(shares), ...(fx ? { fx } : {}) });
        if (!usedRuns.includes(r)) usedRuns.push(r);
      }
    }
  }
  if (!points.length) return omitted('found', 'no run has both the content strategy and a tick with page classes');
  return finish({
    id: 'found',
    kind: 'bars',
    xLabel: 'strategy',
    yLabel: '% of content’s frames saved',
    yScale: 'linear',
    yDomain: [0, 100],
    points,
    caption: {
      measures:
        "of the pages by which content-based sharing saves a frame at a repetition's last tick with classes, the share this strategy's own ledger also saves a frame by (shared, by the same keeper rule) or reclaims as a free frame at the same tick",
      units: '% of content’s frames_saved; mean over repetitions',
      n: `${plural(repetitions, 'repetition')} at most per bar`,
      method: ['content_saved_found_frames / frames_saved of the content row of the same tick (samples.csv; scenarios/README.md, "Where sharing comes from")'],
      runs: usedRuns.map(runName),
    },
    notes: [],
  });
}
