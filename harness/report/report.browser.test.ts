/**
 * The report in a real browser: Debian's Chromium (apt package chromium; scripts/setup installs it) driven by
 * playwright-core opens the report of a run made on fake guests (runner + fake backend, as runner.test.ts)
 * and of that run beside a synthetic KASLR run, and checks that every figure rendered with as many marks as
 * its data, that nothing was fetched from anywhere (every request is routed: any non-file URL fails the
 * test), that the console stayed free of errors, and that each figures/*.svg opens on its own. It saves a
 * screenshot and prints its path. Alone: npm run test:browser.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWithOutputs } from '../cli/run-outputs.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { fakeBackendFactory, fakeImage, fakeKernel, type FakeGuest } from '../testing/fake-backend.ts';
import { writeSyntheticRun } from '../testing/synthetic-run.ts';
import { reportFolders } from './report.ts';
import { FIGURE_IDS } from './figure-kit.ts';

const CHROMIUM = '/usr/bin/chromium';
/** FACTS.md: the closed network refuses Chromium's background connections unless these are off. */
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const SLOW = 180_000; // Chromium starts in ≈ 15 s on a loaded 2-core machine

const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-report-browser-'));
let context: BrowserContext | undefined;
let single: string;
let several: string;
/** Every URL the browser asked for, and those that were not local files. */
const requested: string[] = [];
const refused: string[] = [];

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install it with apt-get install chromium (bash scripts/setup does)`);
  }
  // A whole run on fake guests: 2 guests, content and semantic (which refuses: no kernel in a fake guest), a
  // workload that reports progress so that throughput is measured; its report is written by the ReportWriter.
  const factory = fakeBackendFactory({
    memoryPages: 8,
    boot: (guest: FakeGuest, index: number) => {
      for (let gfn = 0; gfn < 8; gfn++) guest.fill(gfn, gfn < 4 ? gfn + 1 : 100 + index * 10 + gfn);
    },
    workload: (guest: FakeGuest, resumes: number) => {
      if (guest.id === 'g1' && resumes === 1) guest.fill(2, 222);
      guest.workloadProgress.push({ tMs: resumes * 1000, ops: resumes * 200 });
    },
  });
  const outcome = await runWithOutputs({
    scenario: parseScenario({
      name: 'browser',
      guests: 2,
      memoryMiB: [64, 128],
      repetitions: 2,
      durationS: 0.03,
      tickS: 0.01,
      strategies: ['content', 'semantic'],
    }),
    resultsRoot: path.join(temp, 'results'),
    backendFactory: factory,
    image: { image: fakeImage(), kernel: fakeKernel() },
    stopRequested: () => false,
  });
  expect(outcome.status).toBe('completed');
  expect(outcome.warnings).toEqual([]);
  single = path.join(outcome.dir, 'report.html');
  // Beside it, a synthetic KASLR run with kernel figures: all five figures in one report.
  const kaslr = writeSyntheticRun(path.join(temp, 'results'), {
    runId: 'synthetic-kaslr',
    kaslr: true,
    strategies: ['semantic', 'semantic+rodata', 'content'],
    repetitions: 2,
  });
  // And a sweep of the guest count with page classes (synthetic): every figure has data in the three.
  const fleet = writeSyntheticRun(path.join(temp, 'results'), { runId: 'synthetic-fleet', guests: [2, 4], strategies: ['semantic', 'content'], kernel: false });
  several = reportFolders([outcome.dir, kaslr, fleet], path.join(temp, 'several')).html;

  context = await chromium.launchPersistentContext(path.join(temp, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1100, height: 900 },
  });
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith('file://')) return route.continue();
    refused.push(url);
    return route.abort('blockedbyclient');
  });
  context.on('request', (request) => requested.push(request.url()));
}, SLOW);

afterAll(async () => {
  await context?.close();
  fs.rmSync(temp, { recursive: true, force: true });
}, SLOW);

/** Opens a file; returns the page and the console errors and page errors it raised. */
async function open(file: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context!.newPage();
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  return { page, errors };
}

/** The little of the browser's DOM the checks use (the project compiles without the DOM library). */
interface DomElement {
  localName: string;
  namespaceURI: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): DomElement | null;
  querySelectorAll(selector: string): ArrayLike<DomElement> & Iterable<DomElement>;
  getBoundingClientRect(): { width: number; height: number };
  /** SVG graphics elements: their extent in user units. */
  getBBox(): { width: number; height: number };
}
interface DomDocument {
  documentElement: DomElement;
  getElementsByTagName(name: string): { length: number };
}

interface RenderedFigure {
  id: string;
  drawn: boolean;
  kind: string | null;
  series: number;
  points: number;
  ci: number;
  lines: number;
  circles: number;
  bars: number;
  ciRules: number;
  legend: number;
  width: number;
  /** Lines with a rendered extent, bars with a rendered height. */
  visibleLines: number;
  visibleBars: number;
}

/** What the browser laid out for each figure section. */
function renderedFigures(page: Page): Promise<RenderedFigure[]> {
  return page.$$eval('[data-figure]:not(svg)', (found) =>
    (found as unknown as DomElement[]).map((element) => {
      const count = (selector: string) => element.querySelectorAll(selector).length;
      const boxes = (selector: string) => [...element.querySelectorAll(selector)].map((e) => e.getBBox());
      const svg = element.querySelector('svg.xme-figure');
      return {
        id: element.getAttribute('data-figure')!,
        drawn: element.getAttribute('data-drawn') === 'true',
        kind: element.getAttribute('data-kind'),
        series: Number(element.getAttribute('data-series') ?? 0),
        points: Number(element.getAttribute('data-points') ?? 0),
        ci: Number(element.getAttribute('data-ci') ?? 0),
        lines: count('g.xme-line path'),
        circles: count('g.xme-point circle'),
        bars: count('g.xme-bar rect'),
        ciRules: count('g.xme-ci line'),
        legend: count('g.xme-legend-item'),
        width: svg ? svg.getBoundingClientRect().width : 0,
        visibleLines: boxes('g.xme-line path').filter((b) => b.width > 0).length,
        visibleBars: boxes('g.xme-bar rect').filter((b) => b.height > 0).length,
      };
    }),
  );
}

function expectRendered(figure: RenderedFigure): void {
  expect(figure.width, figure.id).toBeGreaterThan(300);
  expect(figure.legend, figure.id).toBeGreaterThan(0);
  expect(figure.ciRules, figure.id).toBe(figure.ci);
  if (figure.kind === 'bars') {
    expect(figure.bars, figure.id).toBe(figure.points);
    expect(figure.visibleBars, figure.id).toBe(figure.points);
  } else if (figure.kind === 'stacked') {
    // A part that is 0 (e.g. no zero pages) is a bar of no height: at least one part shows.
    expect(figure.bars, figure.id).toBe(figure.points);
    expect(figure.visibleBars, figure.id).toBeGreaterThan(0);
  } else {
    expect(figure.lines, figure.id).toBe(figure.series);
    expect(figure.circles, figure.id).toBe(figure.points);
  }
}

describe('report.html in Chromium', () => {
  it(
    'renders every figure of a fake run, with a note for the one without data',
    async () => {
      const { page, errors } = await open(single);
      const figures = await renderedFigures(page);
      // No page classes (no strategy reads them), one guest count, no semantic figure of kernel code: not drawn.
      expect(figures.map((f) => [f.id, f.drawn])).toEqual([
        ['sharing', true],
        ['split', true],
        ['classes', false],
        ['found', false],
        ['cow', true],
        ['cpu', true],
        ['scale', false],
        ['kernel', false],
        ['throughput', true],
      ]);
      for (const figure of figures.filter((f) => f.drawn)) expectRendered(figure);
      // Lines over 3 ticks have a width on screen (a flat line has no height, but it has a width).
      const sharing = figures.find((f) => f.id === 'sharing')!;
      expect(sharing.visibleLines).toBe(sharing.series);
      // 2 sizes × 2 repetitions × 2 strategies × 2 quantities (shared, saved: fake guests report no host residency).
      expect(sharing.series).toBe(2 * 2 * 2 * 2);
      expect(await page.locator('section.omitted[data-figure="kernel"]').textContent()).toMatch(/Not drawn: .*semantic strategy/);
      expect(await page.locator('figure[data-figure="sharing"] figcaption').textContent()).toMatch(/semantic refused to share at (\d+) of \1 ticks/);
      expect(errors).toEqual([]);
      await page.close();
    },
    SLOW,
  );

  it(
    'renders every figure of three runs in one report, and saves a screenshot',
    async () => {
      const { page, errors } = await open(several);
      const figures = await renderedFigures(page);
      expect(figures.map((f) => f.id)).toEqual([...FIGURE_IDS]);
      expect(figures.every((f) => f.drawn)).toBe(true);
      for (const figure of figures) expectRendered(figure);
      const kernel = figures.find((f) => f.id === 'kernel')!;
      expect(kernel.points).toBe(3); // R2 (KASLR on): code by semantic, code and rodata by semantic+rodata
      expect(await page.locator('figure[data-figure="kernel"] svg.xme-figure').textContent()).toContain('R2 · KASLR on');
      expect(await page.locator('table.summary tbody tr').count()).toBeGreaterThan(20);
      expect(errors).toEqual([]);
      // In the test's own folder (removed afterwards), unless XME_REPORT_SCREENSHOT names a file to keep for a look.
      const screenshot = process.env.XME_REPORT_SCREENSHOT ?? path.join(temp, 'report.png');
      await page.screenshot({ path: screenshot, fullPage: true });
      expect(fs.statSync(screenshot).size).toBeGreaterThan(10_000);
      console.log(`report screenshot: ${screenshot}`);
      await page.close();
    },
    SLOW,
  );

  it(
    'opens each figures/*.svg on its own as a valid SVG document',
    async () => {
      const dir = path.join(path.dirname(several), 'figures');
      const files = fs.readdirSync(dir);
      expect(files.sort()).toEqual(FIGURE_IDS.map((id) => `${id}.svg`).sort());
      for (const file of files) {
        const { page, errors } = await open(path.join(dir, file));
        const root = await page.evaluate(() => {
          const document = (globalThis as unknown as { document: DomDocument }).document;
          return {
            tag: document.documentElement.localName,
            namespace: document.documentElement.namespaceURI,
            parseErrors: document.getElementsByTagName('parsererror').length,
            width: document.documentElement.getBoundingClientRect().width,
          };
        });
        expect(root, file).toEqual({ tag: 'svg', namespace: 'http://www.w3.org/2000/svg', parseErrors: 0, width: 760 });
        expect(errors, file).toEqual([]);
        await page.close();
      }
    },
    SLOW,
  );

  it('fetched nothing but local files', () => {
    expect(requested.length).toBeGreaterThan(0);
    expect(refused).toEqual([]);
    expect(requested.filter((url) => !url.startsWith('file://'))).toEqual([]);
  });
});
