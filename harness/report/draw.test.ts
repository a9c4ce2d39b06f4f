/** Layout rules of drawFigure that the figures' readability depends on. */
import { parseHTML } from 'linkedom';
import { describe, expect, it } from 'vitest';
import { drawFigure, PALETTE } from './draw.ts';
import { SAVED_CLASSES } from '../introspection/saved-by-class.ts';
import type { DrawnFigure } from './figure-data.ts';

function barsFigure(panels: number): DrawnFigure {
  const fx = Array.from({ length: panels }, (_, i) => `R${i + 1} · nokaslr · 256 MiB`);
  const points = fx.flatMap((panel) =>
    ['code\nsemantic', 'rodata\nsemantic+rodata'].map((x, k) => ({
      series: `${panel} ${x}`,
      legend: k ? 'kernel rodata' : 'kernel code',
      x,
      y: 90 + k,
      fx: panel,
    })),
  );
  return {
    id: 'kernel',
    title: 'Figure 4',
    drawn: true,
    kind: 'bars',
    xLabel: 'part',
    yLabel: '%',
    yScale: 'linear',
    points,
    series: points.map((p) => p.series),
    legend: ['kernel code', 'kernel rodata'],
    fxDomain: fx,
    fyDomain: [],
    caption: { measures: '', units: '', n: '', method: [], runs: [] },
    notes: [],
  };
}

/** The drawn SVG's height and its number of bars. */
function svgOf(figure: DrawnFigure) {
  const { document } = parseHTML(`<!doctype html><html><body>${drawFigure(figure)}</body></html>`);
  const svg = document.querySelector('svg.xme-figure')!;
  return { height: Number(svg.getAttribute('height')), bars: document.querySelectorAll('.xme-bar rect').length };
}

describe('bar panels', () => {
  it('stay side by side up to three, and are stacked as rows beyond (a suite report has one per run)', () => {
    const few = svgOf(barsFigure(3));
    const many = svgOf(barsFigure(8));
    expect(few.bars).toBe(6);
    expect(many.bars).toBe(16); // every bar still drawn
    expect(few.height).toBeLessThan(450);
    expect(many.height).toBeGreaterThanOrEqual(8 * 150); // a row of full width per panel
  });
});

/** A classes-style figure: one stacked bar per strategy, in one panel. */
function strategiesFigure(strategies: readonly string[]): DrawnFigure {
  const points = strategies.map((x) => ({ series: x, legend: 'page cache', x, y: 100 }));
  return { ...barsFigure(1), id: 'classes', kind: 'stacked', points, series: strategies.slice(), legend: ['page cache'], fxDomain: [] };
}

/** The rotation of the x axis' tick labels, in degrees (0 when level), and the drawn SVG's height. */
function xTicksOf(figure: DrawnFigure) {
  const { document } = parseHTML(`<!doctype html><html><body>${drawFigure(figure)}</body></html>`);
  const transform = document.querySelector('g[aria-label="x-axis tick label"] text')?.getAttribute('transform') ?? '';
  const rotation = /rotate\((-?[\d.]+)\)/.exec(transform);
  return { rotation: rotation ? Number(rotation[1]) : 0, height: Number(document.querySelector('svg.xme-figure')!.getAttribute('height')) };
}

describe('category labels under bars', () => {
  it('stay level while they fit, and are turned (with room below) when they would run into each other', () => {
    const few = xTicksOf(strategiesFigure(['semantic', 'content']));
    const many = xTicksOf(
      strategiesFigure(['content', 'content-incremental', 'hybrid', 'ksm', 'semantic', 'semantic+rodata', 'semantic-free', 'semantic-pagecache', 'union']),
    );
    expect(few.rotation).toBe(0);
    expect(many.rotation).toBeLessThan(0);
    expect(many.height).toBeGreaterThan(few.height); // the turned labels' room is added, not taken from the bars
  });
});

describe('legend colours', () => {
  it('are distinct, enough for the classes figure (every page class, unlocated, reclaimed free)', () => {
    expect(new Set(PALETTE.map((c) => c.toLowerCase())).size).toBe(PALETTE.length);
    expect(PALETTE.length).toBeGreaterThanOrEqual(SAVED_CLASSES.length + 2);
  });
});
