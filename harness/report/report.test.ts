/** report.html and figures/*.svg from synthetic results folders: self-contained, every figure there with its marks. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseHTML } from 'linkedom';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createCli } from '../cli/cli.ts';
import { UsageError } from '../util/errors.ts';
import { writeSyntheticRun } from '../testing/synthetic-run.ts';
import { recordedHeader } from '../testing/recorded-samples.ts';
import type { RunEnd } from '../results/run.ts';
import { runRecord } from '../results/run-record.ts';
import { FIGURE_IDS } from './figure-data.ts';
import { buildReport, reportFolders } from './report.ts';
import { readReportRun } from './read-results.ts';
import { ReportWriter } from './report-writer.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-report-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const sweep = writeSyntheticRun(root, { runId: 'sweep', memoryMiB: [128, 256], repetitions: 3, strategies: ['semantic', 'semantic+rodata', 'content'] });
/** A sweep of the guest count, for the scale figure. */
const fleet = writeSyntheticRun(root, { runId: 'fleet', guests: [2, 4], repetitions: 2, strategies: ['semantic', 'content'] });
const idle = writeSyntheticRun(root, { runId: 'idle', workload: 'idle', opsPerS: 0, kernel: false, kaslr: true });

/** Every URL-bearing attribute and CSS url() of a page: all must stay inside the file or beside it. */
function externalReferences(html: string): string[] {
  const attributes = [...html.matchAll(/\s(?:src|href|xlink:href|action|poster|data)\s*=\s*("([^"]*)"|'([^']*)'|([^\s>]+))/gi)].map(
    (m) => m[2] ?? m[3] ?? m[4] ?? '',
  );
  const css = [...html.matchAll(/url\(([^)]*)\)|@import/gi)].map((m) => m[0]);
  return [...attributes.filter((value) => /^\s*(?:[a-z][a-z0-9+.-]*:|\/\/)/i.test(value)), ...css];
}

/** What the tests use of a DOM element (linkedom's; the project's TypeScript has no DOM types). */
interface Node {
  querySelectorAll(selector: string): { length: number };
}

/** The figure's marks as drawn: line paths, points, bars, CI rules. */
function marksOf(figure: Node) {
  return {
    lines: figure.querySelectorAll('g.xme-line path').length,
    points: figure.querySelectorAll('g.xme-point circle').length,
    bars: figure.querySelectorAll('g.xme-bar rect').length,
    ci: figure.querySelectorAll('g.xme-ci line').length,
  };
}

describe('report.html', () => {
  const runs = [readReportRun(sweep), readReportRun(idle), readReportRun(fleet)];
  const built = buildReport(runs, { generatedAt: '2026-11-27T14:00:00.000Z' });
  const { document } = parseHTML(built.html);

  it('is self-contained: no script, no external stylesheet, font or image, no http(s) URL in any src or href', () => {
    expect(built.html).not.toMatch(/<script/i);
    expect(built.html).not.toMatch(/<link/i);
    expect(built.html).not.toMatch(/@font-face/i);
    expect(externalReferences(built.html)).toEqual([]);
    expect([...document.querySelectorAll('[src],[href]')].map((e) => e.getAttribute('src') ?? e.getAttribute('href'))).toEqual([
      'figures/sharing.svg',
      'figures/split.svg',
      'figures/classes.svg',
      'figures/found.svg',
      'figures/cow.svg',
      'figures/cpu.svg',
      'figures/scale.svg',
      'figures/kernel.svg',
      'figures/throughput.svg',
    ]);
  });

  it('has every figure, inline, with as many lines, points, bars and CI rules as its data', () => {
    expect(built.figures.map((f) => f.id)).toEqual([...FIGURE_IDS]);
    for (const figure of built.figures) {
      if (!figure.drawn) throw new Error(`${figure.id} not drawn: ${figure.reason}`);
      const element = document.querySelector(`figure[data-figure="${figure.id}"]`);
      expect(element, figure.id).not.toBeNull();
      expect(element!.querySelectorAll('svg.xme-figure')).toHaveLength(1);
      expect(element!.getAttribute('data-series')).toBe(String(figure.series.length));
      const withCi = figure.points.filter((p) => p.low !== undefined).length;
      const expected = {
        lines: figure.kind === 'bars' || figure.kind === 'stacked' ? 0 : figure.series.length,
        points: figure.kind === 'bars' || figure.kind === 'stacked' ? 0 : figure.points.length,
        bars: figure.kind === 'bars' || figure.kind === 'stacked' ? figure.points.length : 0,
        ci: withCi,
      };
      expect(marksOf(element!), figure.id).toEqual(expected);
      // Legend: one swatch per entry.
      expect(element!.querySelectorAll('g.xme-legend-item')).toHaveLength(figure.legend.length);
      // Caption: units, n, method and runs.
      const caption = element!.querySelector('figcaption')!.textContent!;
      for (const part of ['Measures', 'Units', 'n', 'Method', 'Runs']) expect(caption).toContain(part);
    }
    // The sweep's sharing figure: 2 sizes × 3 repetitions × 3 strategies × 3 quantities, the idle run's 1 × 1 × 2 × 3,
    // and the fleet's 2 guest counts × 2 repetitions × 2 strategies × 3.
    expect(document.querySelector('figure[data-figure="sharing"]')!.querySelectorAll('g.xme-line path')).toHaveLength(54 + 6 + 24);
  });

  it('tables every summary.csv row of every run, with unit and method', () => {
    const expected = runs.reduce((n, run) => n + run.summary!.length, 0);
    const table = document.querySelector('table.summary')!;
    expect(table.querySelectorAll('tbody tr')).toHaveLength(expected);
    const cells = [...table.querySelectorAll('tbody tr')].map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));
    const scan = cells.find((c) => c[0] === 'R1' && c[1] === '128 MiB' && c[2] === 'content' && c[3] === 'scan_cpu_ms')!;
    expect(scan[4]).toBe('3'); // n
    expect(scan[8]).toBe('ms per scan');
    expect(scan[9]).toMatch(/CLOCK_THREAD_CPUTIME_ID/);
    expect(scan[7]).toMatch(/^[\d.,]+ – [\d.,]+$/); // the CI
  });

  it('names the runs, with KASLR and status', () => {
    const text = document.querySelector('table.runs')!.textContent!;
    expect(text).toContain('sweep');
    expect(text).toContain('off (nokaslr)');
    expect(text).toContain('on');
  });
});

describe('report.html for a run that lacks some data', () => {
  it('leaves the figure out with a note instead of drawing it empty', () => {
    const built = buildReport([readReportRun(idle)]);
    const { document } = parseHTML(built.html);
    for (const id of ['kernel', 'throughput']) {
      const section = document.querySelector(`section.omitted[data-figure="${id}"]`);
      expect(section, id).not.toBeNull();
      expect(section!.textContent).toMatch(/Not drawn: /);
      expect(section!.querySelector('svg')).toBeNull();
    }
    expect(document.querySelectorAll('figure svg.xme-figure').length).toBe(6);
  });
});

describe('files', () => {
  it('writes report.html and figures/<id>.svg, each a standalone SVG; a later report removes figures it no longer draws', () => {
    const out = path.join(root, 'out');
    const first = reportFolders([sweep, idle, fleet], out);
    expect(first.html).toBe(path.join(out, 'report.html'));
    expect(first.figures.map((f) => path.basename(f.file))).toEqual([
      'sharing.svg',
      'split.svg',
      'classes.svg',
      'found.svg',
      'cow.svg',
      'cpu.svg',
      'scale.svg',
      'kernel.svg',
      'throughput.svg',
    ]);
    for (const { file } of first.figures) {
      const svg = fs.readFileSync(file, 'utf8');
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg" ')).toBe(true);
      expect(externalReferences(svg)).toEqual([]);
      expect(fs.readFileSync(first.html, 'utf8')).toContain(svg.trim());
    }
    const second = reportFolders([idle], out);
    expect(second.omitted.map((o) => [o.id, o.notAsked])).toEqual([
      ['scale', true],
      ['kernel', false],
      ['throughput', false],
    ]);
    expect(fs.readdirSync(path.join(out, 'figures')).sort()).toEqual(['classes.svg', 'cow.svg', 'cpu.svg', 'found.svg', 'sharing.svg', 'split.svg']);
  });
});

describe('xme report', () => {
  async function run(argv: string[]): Promise<{ stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
    try {
      await createCli(argv).parseAsync();
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    return { stdout, stderr };
  }

  it('writes one run’s report into its folder (a bare run id is looked up under --results)', async () => {
    const dir = writeSyntheticRun(root, { runId: 'cli-one' });
    const { stdout, stderr } = await run(['report', 'cli-one', '--results', root]);
    expect(stdout.split('\n')[0]).toBe(path.join(dir, 'report.html'));
    expect(stdout).toContain('figures/sharing.svg');
    expect(stderr).toBe('');
    expect(fs.existsSync(path.join(dir, 'report.html'))).toBe(true);
  });

  it('needs --out for several runs', async () => {
    await expect(run(['report', sweep, idle])).rejects.toBeInstanceOf(UsageError);
    await expect(run(['report', sweep, idle])).rejects.toThrow(/several runs need --out DIR/);
  });

  it('says which figures it left out, on stderr', async () => {
    const out = path.join(root, 'cli-out');
    const { stderr } = await run(['report', idle, '--out', out]);
    expect(stderr).toMatch(/^note: figure 'kernel' not drawn: /m);
    expect(stderr).toMatch(/^note: figure 'throughput' not drawn: /m);
  });
});

describe('ReportWriter (the report at the end of xme run)', () => {
  const endOf = (warnings: string[] = []): RunEnd => ({
    status: 'completed',
    endedAt: '2026-11-27T13:45:00.000Z',
    backend: undefined,
    sharingModes: ['accounted'],
    cowMethods: [],
    repetitions: [],
    summary: [],
    overhead: undefined,
    warnings,
    notes: [],
  });

  it('writes report.html from the folder’s CSVs and the run record it is given', async () => {
    const dir = writeSyntheticRun(root, { runId: 'writer-ok' });
    fs.rmSync(path.join(dir, 'run.json')); // at the end of a run, run.json is written after the report
    const writer = new ReportWriter();
    const header = { ...recordedHeader(dir), runId: 'writer-ok' };
    writer.begin(header);
    await writer.prepareEnd();
    const warnings = writer.make(dir, runRecord(header, endOf()));
    expect(warnings).toEqual([]);
    const html = fs.readFileSync(path.join(dir, 'report.html'), 'utf8');
    expect(html).toContain('writer-ok');
    expect(html).toContain('data-figure="sharing" data-drawn="true"');
  });

  it('turns a report that cannot be made into a warning, and leaves the CSVs as they were', async () => {
    const dir = writeSyntheticRun(root, { runId: 'writer-fails' });
    const before = ['samples.csv', 'summary.csv'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
    const writer = new ReportWriter(() => Promise.reject(new Error('no drawing library')));
    writer.begin(recordedHeader(dir));
    await writer.prepareEnd();
    let warnings: readonly string[] = [];
    expect(() => (warnings = writer.make(dir, runRecord(recordedHeader(dir), endOf())))).not.toThrow();
    expect(warnings).toEqual([`report.html not written: no drawing library (samples.csv and summary.csv are complete; to retry: xme report ${dir})`]);
    expect(['samples.csv', 'summary.csv'].map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))).toEqual(before);
    expect(fs.existsSync(path.join(dir, 'report.html'))).toBe(false);

    const throwing = new ReportWriter(() =>
      Promise.resolve({
        reportFolders: () => {
          throw new Error('disk full');
        },
      }),
    );
    throwing.begin(recordedHeader(dir));
    await throwing.prepareEnd();
    const second = throwing.make(dir, runRecord(recordedHeader(dir), endOf()));
    expect(second[0]).toMatch(/^report.html not written: disk full/);
  });
});
