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

describe('legend colours', () => {
  it('are distinct, enough for the classes figure (every page class, unlocated, reclaimed free)', () => {
    expect(new Set(PALETTE.map((c) => c.toLowerCase())).size).toBe(PALETTE.length);
    expect(PALETTE.length).toBeGreaterThanOrEqual(SAVED_CLASSES.length + 2);
  });
});
