/** The report's figure data from synthetic results folders (testing/synthetic-run.ts): series, points, captions, omissions. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { writeSyntheticRun } from '../testing/synthetic-run.ts';
import { buildFigures, type DrawnFigure, type FigureData, type FigureId } from './figure-data.ts';
import { readReportRun } from './read-results.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-report-data-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const STRATEGIES = ['semantic', 'semantic+rodata', 'content'];
/** 2 sizes × 3 repetitions × 4 ticks × 3 strategies. */
const sweep = writeSyntheticRun(root, { runId: 'sweep', memoryMiB: [128, 256], repetitions: 3, ticks: 4, strategies: STRATEGIES });

function figure(figures: FigureData[], id: FigureId): DrawnFigure {
  const found = figures.find((f) => f.id === id);
  if (!found?.drawn) throw new Error(`figure ${id} not drawn: ${found && !found.drawn ? found.reason : 'absent'}`);
  return found;
}
const distinctX = (f: DrawnFigure) => [...new Set(f.points.map((p) => p.x))];
const omission = (figures: FigureData[], id: FigureId) => {
  const found = figures.find((f) => f.id === id);
  if (!found || found.drawn) throw new Error(`figure ${id} was drawn`);
  return found.reason;
};

describe('figure data of one run (a sweep: 2 memory sizes × 3 repetitions)', () => {
  const figures = buildFigures([readReportRun(sweep)]);

  it('has the nine figures in order, all drawn but scale (one guest count)', () => {
    expect(figures.map((f) => f.id)).toEqual(['sharing', 'split', 'classes', 'found', 'cow', 'cpu', 'scale', 'kernel', 'throughput']);
    expect(figures.filter((f) => !f.drawn).map((f) => f.id)).toEqual(['scale']);
    expect(omission(figures, 'scale')).toMatch(/^no run swept the guest count/);
  });

  it('(1) sharing: a line per memory × repetition × strategy × quantity, a point per tick, panels in order', () => {
    const f = figure(figures, 'sharing');
    expect(f.kind).toBe('lines');
    expect(f.series).toHaveLength(2 * 3 * 3 * 3);
    expect(f.points).toHaveLength(2 * 3 * 3 * 3 * 4);
    expect(f.legend).toEqual(STRATEGIES);
    expect(f.fyDomain).toEqual(['shared pages', 'frames saved', 'host frames saved']);
    expect(f.fxDomain).toEqual(['128 MiB', '256 MiB']);
    const semantic = f.points.filter((p) => p.series === '|2|128|semantic|2|shared pages');
    expect(semantic.map((p) => [p.x, p.y])).toEqual([
      [0, 1002],
      [2.5, 1012],
      [5, 1022],
      [7.5, 1032],
    ]);
    expect(f.caption.units).toMatch(/^pages/);
    expect(f.caption.n).toBe('3 repetitions per memory size × 4 ticks');
    expect(f.caption.runs).toEqual(['sweep']);
    expect(f.caption.method.join('\n')).toMatch(/shared pages \(shared_pages\): at the last tick: guest pages in shared state/);
    expect(f.caption.method.join('\n')).toMatch(/sharing mode \(sharing_mode\): accounted/);
  });

  it('(2) CoW: one cumulative line per memory × repetition × strategy, naming the method and that it is a lower bound', () => {
    const f = figure(figures, 'cow');
    expect(f.series).toHaveLength(2 * 3 * 3);
    expect(f.points).toHaveLength(2 * 3 * 3 * 4);
    expect(f.legend).toEqual(STRATEGIES.map((s) => `${s} (content-reread, lower bound)`));
    expect(f.points.filter((p) => p.series === '|2|256|content|1|CoW faults').map((p) => p.y)).toEqual([0, 3, 6, 9]);
    expect(f.caption.method[0]).toBe('CoW method (cow_method) and count (cow_count): content-reread: lower bound');
    expect(f.notes).toEqual([]);
  });

  it('(3) CPU: a mean with its 95% CI per memory × strategy × panel: mechanism, instrument, whole tick, scan', () => {
    const f = figure(figures, 'cpu');
    expect(f.kind).toBe('means');
    expect(f.points).toHaveLength(2 * 3 * 4);
    expect(f.series).toHaveLength(3 * 4);
    expect(f.points.every((p) => p.low !== undefined && p.high !== undefined && p.low < p.y && p.y < p.high)).toBe(true);
    // The tick split first, labelled: what a real system pays, then xme's instrument; the whole tick and the scan below.
    expect(f.fyDomain).toEqual(['mechanism (ms per tick)', 'instrument (ms per tick)', 'whole tick (ms per tick)', 'scan (ms per scan)']);
    expect(f.caption.measures).toMatch(/mechanism \(mechanism_cpu_ms: what a real system doing this sharing pays/);
    expect(f.caption.measures).toMatch(/xme’s instrument \(instrument_cpu_ms: .*CoW detection by re-reading every shared page/);
    expect(f.caption.method.some((m) => m.startsWith('cow_model_cpu_ms (part of the mechanism): CoW handling modelled per fault'))).toBe(true);
    // content at 128 MiB, repetition means: mechanism = 1.25 × scan + CoW model, instrument = 0.75 × scan (synthetic-run.ts).
    const content = (panel: string) => f.points.find((p) => p.legend === 'content' && p.x === 128 && p.fy === panel)!.y;
    expect(content('mechanism (ms per tick)') + content('instrument (ms per tick)')).toBeCloseTo(content('whole tick (ms per tick)') + 0.03, 9);
    expect(f.yScale).toBe('log'); // content's 120 ms against semantic's 4 ms
    expect(f.caption.n).toMatch(/^n = 3 repetitions per mean/);
    expect(f.caption.method.some((m) => m.startsWith('cpu_method: clock_gettime(CLOCK_THREAD_CPUTIME_ID)'))).toBe(true);
  });

  it('(4) kernel: a bar per memory × strategy × part, labelled nokaslr', () => {
    const f = figure(figures, 'kernel');
    expect(f.points).toHaveLength(2 * 3);
    expect(f.legend).toEqual(['kernel code', 'kernel rodata']);
    expect(f.fxDomain).toEqual(['nokaslr · 128 MiB', 'nokaslr · 256 MiB']);
    expect(f.points.map((p) => p.x)).toContain('rodata\nsemantic+rodata');
  });

  it('(1b) split: per memory × strategy, three stacked parts that add up to frames_saved', () => {
    const f = figure(figures, 'split');
    expect(f.kind).toBe('stacked');
    expect(f.points).toHaveLength(2 * 3 * 3);
    expect(f.legend).toEqual(['zero pages', 'within a guest', 'across guests']);
    const content = f.points.filter((p) => p.x === 'content' && p.fx === '128 MiB');
    expect(content.map((p) => p.y)).toEqual([100, (1500 - 100) / 5, ((1500 - 100) * 4) / 5]); // content is the third strategy: frames_saved 1500
    expect(f.caption.measures).toMatch(/k − 1 “across guests” and m − k “within a guest”/);
  });

  it('(1c) classes: per memory × strategy, a stacked part per page class with savings, adding up to frames_saved at the last tick', () => {
    const f = figure(figures, 'classes');
    expect(f.kind).toBe('stacked');
    expect(f.legend).toEqual(['free', 'page cache', 'kernel text']);
    expect(f.points).toHaveLength(2 * 3 * 3);
    // content's frames_saved at each repetition's last tick, from samples.csv: the synthetic run splits it ¼ free, ½ page cache, ¼ kernel text.
    const content = f.points.filter((p) => p.x === 'content' && p.fx === '128 MiB');
    const rows = readReportRun(sweep).samples!.filter((r) => r.strategy === 'content' && r.memory_mib === 128 && r.tick === 3);
    expect(rows).toHaveLength(3);
    const saved = rows.reduce((sum, r) => sum + r.frames_saved!, 0) / 3;
    // samples.csv keeps 6 significant digits: the parts agree with frames_saved to that.
    expect(content.map((p) => p.legend)).toEqual(['free', 'page cache', 'kernel text']);
    content.forEach((p, i) => expect(p.y).toBeCloseTo([saved / 4, saved / 2, saved / 4][i]!, 1));
    expect(f.caption.measures).toMatch(/keeper/);
  });

  it('(1d) found: each strategy but content, its content_saved_found_frames as a % of content’s frames_saved at the same tick', () => {
    const f = figure(figures, 'found');
    expect(f.kind).toBe('bars');
    expect(distinctX(f)).toEqual(['semantic', 'semantic+rodata']);
    const semantic = f.points.find((p) => p.x === 'semantic' && p.fx === '256 MiB')!;
    const at = (strategy: string) => readReportRun(sweep).samples!.filter((r) => r.strategy === strategy && r.memory_mib === 256 && r.tick === 3);
    const content = at('content');
    const expected =
      at('semantic').reduce((sum, r) => sum + (100 * r.content_saved_found_frames!) / content.find((c) => c.repetition === r.repetition)!.frames_saved!, 0) / 3;
    expect(expected).toBeGreaterThan(0);
    expect(semantic.y).toBeCloseTo(expected, 9);
  });

  it('(5) throughput: a bar per memory × strategy', () => {
    const f = figure(figures, 'throughput');
    expect(f.points).toHaveLength(2 * 3);
    expect(f.caption.units).toBe('ops/s');
    expect(f.caption.measures).toMatch(/workload memchurn/);
  });
});

describe('figure data of several runs', () => {
  const nokaslr = writeSyntheticRun(root, { runId: 'nokaslr', repetitions: 2 });
  const kaslr = writeSyntheticRun(root, { runId: 'kaslr', kaslr: true, repetitions: 2 });
  const figures = buildFigures([readReportRun(nokaslr), readReportRun(kaslr)]);

  it('tags each run (R1, R2) in legends and captions, and labels the kernel bars by KASLR', () => {
    expect(figure(figures, 'sharing').legend).toEqual(['R1 semantic', 'R1 content', 'R2 semantic', 'R2 content']);
    expect(figure(figures, 'sharing').caption.runs).toEqual(['R1 = nokaslr', 'R2 = kaslr']);
    const kernel = figure(figures, 'kernel');
    expect(kernel.fxDomain).toEqual(['R1 · nokaslr', 'R2 · KASLR on']);
    expect(kernel.points.map((p) => p.y)).toEqual([100, 28.75]);
  });
});

describe('figures left out, with the reason', () => {
  it('omits the summary figures of a run without summary.csv, and the time figures of one without samples.csv', () => {
    const noSummary = writeSyntheticRun(root, { runId: 'no-summary', without: ['summary.csv'], status: 'interrupted' });
    const figures = buildFigures([readReportRun(noSummary)]);
    expect(figures.filter((f) => f.drawn).map((f) => f.id)).toEqual(['sharing', 'classes', 'found', 'cow']);
    expect(omission(figures, 'cpu')).toBe(
      "no run's summary.csv has mechanism_cpu_ms or instrument_cpu_ms or tick_cpu_ms or scan_cpu_ms; no summary.csv in no-summary",
    );
    const noSamples = writeSyntheticRun(root, { runId: 'no-samples', without: ['samples.csv'] });
    const others = buildFigures([readReportRun(noSamples)]);
    expect(omission(others, 'sharing')).toBe('no samples.csv in no-samples');
    expect(omission(others, 'cow')).toBe('no samples.csv in no-samples');
    expect(others.filter((f) => f.drawn).map((f) => f.id)).toEqual(['split', 'cpu', 'kernel', 'throughput']);
    expect(omission(others, 'classes')).toMatch(/^no tick had page classes/);
    expect(omission(others, 'found')).toBe('no run has both the content strategy and a tick with page classes');
  });

  it('omits the kernel figure when no semantic strategy measured it, and throughput when the workload reports none', () => {
    const dir = writeSyntheticRun(root, { runId: 'idle', kernel: false, workload: 'idle', opsPerS: 0 });
    const figures = buildFigures([readReportRun(dir)]);
    expect(omission(figures, 'kernel')).toMatch(/^no run's summary.csv has kernel_code_shareability_pct or kernel_rodata_shareability_pct .*semantic strategy/);
    expect(omission(figures, 'throughput')).toBe("workload_ops_per_s is 0 in every row: the guests' workload (idle) reported no operations");
  });

  it('draws no host-frames panel where the backend does not report host-resident pages, and says so', () => {
    const dir = writeSyntheticRun(root, { runId: 'no-host', hostFrames: false });
    const f = figure(buildFigures([readReportRun(dir)]), 'sharing');
    expect(f.fyDomain).toEqual(['shared pages', 'frames saved']);
    expect(f.notes.join(' ')).toMatch(/host_frames_saved is not in these samples/);
  });

  it('notes when a mean has no CI (n = 1)', () => {
    const dir = writeSyntheticRun(root, { runId: 'single' });
    const f = figure(buildFigures([readReportRun(dir)]), 'cpu');
    expect(f.points.every((p) => p.low === undefined)).toBe(true);
    expect(f.notes[0]).toMatch(/^8 means without a CI: n = 1/);
  });

  it('draws the whole tick and the scan alone for results written before the tick split, and says so', () => {
    const dir = writeSyntheticRun(root, { runId: 'before-split' });
    const file = path.join(dir, 'summary.csv');
    const rows = parse(fs.readFileSync(file), { columns: true }) as Record<string, string>[];
    fs.writeFileSync(
      file,
      stringify(
        rows.filter((row) => !/^(mechanism|instrument|cow_model)_/.test(row.metric!)),
        { header: true },
      ),
    );
    const f = figure(buildFigures([readReportRun(dir)]), 'cpu');
    expect(f.fyDomain).toEqual(['whole tick (ms per tick)', 'scan (ms per scan)']);
    expect(f.notes).toContain('These results predate the split of a tick into mechanism and instrument: only the whole tick and the scan are drawn.');
  });
});

describe('older and enforced results', () => {
  it('reads a samples.csv without the cow_count column: the count’s kind from its method, with a note', () => {
    const dir = writeSyntheticRun(root, { runId: 'old', cowMethod: 'hypervisor' });
    const file = path.join(dir, 'samples.csv');
    const rows = parse(fs.readFileSync(file), { columns: true }) as Record<string, string>[];
    fs.writeFileSync(
      file,
      stringify(
        rows.map(({ cow_count: _dropped, ...rest }) => rest),
        { header: true },
      ),
    );
    const f = figure(buildFigures([readReportRun(dir)]), 'cow');
    expect(f.legend).toEqual(['semantic (hypervisor, upper bound)', 'content (hypervisor, upper bound)']);
    expect(f.notes[0]).toMatch(/no cow_count column/);
  });

  it('says why a strategy’s line stays at 0: it refused (samples.csv status)', () => {
    const dir = writeSyntheticRun(root, { runId: 'refused', ticks: 3 });
    const file = path.join(dir, 'samples.csv');
    const rows = parse(fs.readFileSync(file), { columns: true }) as Record<string, string>[];
    const refused = rows.map((row) => (row.strategy === 'semantic' ? { ...row, shared_pages: '0', status: 'refused: System.map does not match' } : row));
    fs.writeFileSync(file, stringify(refused, { header: true }));
    const f = figure(buildFigures([readReportRun(dir)]), 'sharing');
    expect(f.notes).toContain('semantic refused to share at 3 of 3 ticks (samples.csv status; the first: refused: System.map does not match).');
  });

  it('refuses a folder that is not a results folder, naming it', () => {
    expect(() => readReportRun(path.join(root, 'nothing-here'))).toThrow(/results folder .*nothing-here does not exist/);
    const empty = fs.mkdtempSync(path.join(root, 'empty-'));
    expect(() => readReportRun(empty)).toThrow(/is not a results folder: it has no run.json/);
  });
});

describe('figure data of a run that sweeps the guest count (scale)', () => {
  const fleet = writeSyntheticRun(root, { runId: 'fleet', guests: [2, 8, 32], repetitions: 2, strategies: ['semantic', 'content'] });
  const figures = buildFigures([readReportRun(fleet)]);

  it('(6) scale: per strategy a mean per guest count in three panels, and the whole run’s memory and first result once', () => {
    const f = figure(figures, 'scale');
    expect(f.kind).toBe('means');
    expect(f.yScale).toBe('log'); // one y axis for ms per guest and MiB: linear would flatten the small panels
    expect(distinctX(f)).toEqual([2, 8, 32]);
    expect(f.fyDomain).toEqual([
      'mechanism CPU per tick (ms per tick)',
      'mechanism CPU per tick per guest (ms per tick per guest)',
      'first scan per guest (ms per guest)',
      "the harness's own memory (peak) (MiB)",
      'boot to the first result (s)',
    ]);
    // 2 strategies × 3 per-strategy panels + 2 whole-run panels drawn once.
    expect(f.series).toHaveLength(2 * 3 + 2);
    const memory = f.points.filter((p) => p.fy === "the harness's own memory (peak) (MiB)");
    expect(memory.map((p) => [p.x, p.legend])).toEqual([
      [2, 'whole run (all strategies)'],
      [8, 'whole run (all strategies)'],
      [32, 'whole run (all strategies)'],
    ]);
    expect(memory.map((p) => p.y)).toEqual([150 + 2 * 4 + 1.5, 150 + 8 * 4 + 1.5, 150 + 32 * 4 + 1.5]); // mean of repetitions 1 and 2
    expect(memory.every((p) => p.low !== undefined && p.high !== undefined)).toBe(true);
    expect(f.caption.method.find((m) => m.startsWith('harness_memory_mib: '))).toMatch(/RssAnon/);
  });

  it('(3) CPU draws such a run at its largest count, and says so', () => {
    const f = figure(figures, 'cpu');
    expect(f.points.length).toBeGreaterThan(0);
    expect(f.notes).toContain('A run that swept the guest count is drawn at its largest count here; the scale figure has every count.');
    expect(distinctX(f)).toEqual([256]);
    expect(f.points.filter((p) => p.fy?.startsWith('mechanism')).length).toBe(2); // one per strategy, not one per count
  });
});
