/**
 * Draws a figure (figure-data.ts) as one standalone SVG, server-side: Observable Plot renders into a linkedom
 * document (no browser), and the SVG gets its legend drawn in SVG too (Plot's own legend is HTML), so the
 * same markup is a file of its own (figures/<id>.svg) and inline in report.html. Nothing in it refers to
 * anything outside it: no scripts, no fonts, no links.
 *
 * Every mark group carries a class the tests count: xme-line (one path per series), xme-point (one circle per
 * point), xme-bar (one rect per bar), xme-ci (one line per CI).
 */
import * as Plot from '@observablehq/plot';
import { parseHTML } from 'linkedom';
import type { DrawnFigure, FigurePoint } from './figure-data.ts';

/** Tableau 10: distinguishable, and printable in grey. More legend entries than this reuse the colours. */
/**
 * Legend colours, one per entry in order (Tableau 10, then six of Tableau 20's lighter and darker tones). The
 * classes figure has up to 13 entries (11 page classes, KSM's unlocated zero pages, reclaimed free frames):
 * with 10 colours the 11th and later repeated the first ones, and reclaimed free frames looked like kernel text.
 */
export const PALETTE = [
  '#4e79a7',
  '#f28e2c',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc949',
  '#af7aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ab',
  '#a0cbe8',
  '#ffbe7d',
  '#8cd17d',
  '#b6992d',
  '#d37295',
  '#499894',
];

const WIDTH = 760;
const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif';

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const formatNumber = (value: number) =>
  Math.abs(value) >= 1000 || Number.isInteger(value)
    ? Math.round(value).toLocaleString('en')
    : Number(value.toPrecision(4)).toLocaleString('en', { maximumFractionDigits: 4 });

function pointTitle(p: FigurePoint): string {
  const ci = p.low !== undefined && p.high !== undefined ? ` (95% CI ${formatNumber(p.low)} – ${formatNumber(p.high)})` : '';
  return `${p.legend}${p.fy ? ` · ${p.fy}` : ''}${p.fx ? ` · ${p.fx}` : ''}\n${typeof p.x === 'number' ? formatNumber(p.x) : p.x.replace('\n', ' ')}: ${formatNumber(p.y)}${ci}`;
}

function marks(figure: DrawnFigure): Plot.Markish[] {
  const points = figure.points;
  const withCi = points.filter((p) => p.low !== undefined && p.high !== undefined);
  const facets = { fx: points.some((p) => p.fx !== undefined) ? 'fx' : undefined, fy: points.some((p) => p.fy !== undefined) ? 'fy' : undefined };
  const common = { ...facets, title: pointTitle };
  switch (figure.kind) {
    case 'lines':
      return [
        Plot.frame({ stroke: '#ddd' }),
        Plot.lineY(points, { ...facets, x: 'x', y: 'y', z: 'series', stroke: 'legend', strokeWidth: 1.5, className: 'xme-line' }),
        Plot.dot(points, { ...common, x: 'x', y: 'y', fill: 'legend', r: 2, className: 'xme-point' }),
      ];
    case 'means':
      return [
        Plot.frame({ stroke: '#ddd' }),
        Plot.lineY(points, { ...facets, x: 'x', y: 'y', z: 'series', stroke: 'legend', strokeWidth: 1.5, className: 'xme-line' }),
        Plot.ruleX(withCi, { ...facets, x: 'x', y1: 'low', y2: 'high', stroke: 'legend', strokeWidth: 1.5, className: 'xme-ci' }),
        Plot.dot(points, { ...common, x: 'x', y: 'y', fill: 'legend', r: 3.5, className: 'xme-point' }),
      ];
    case 'stacked':
      return [Plot.barY(points, { ...common, x: 'x', y: 'y', fill: 'legend', className: 'xme-bar' }), Plot.ruleY([0])];
    case 'bars':
      return [
        Plot.barY(points, { ...common, x: 'x', y: 'y', fill: 'legend', className: 'xme-bar' }),
        Plot.ruleX(withCi, { ...facets, x: 'x', y1: 'low', y2: 'high', stroke: '#333', strokeWidth: 1.5, className: 'xme-ci' }),
        Plot.text(points, {
          ...facets,
          x: 'x',
          y: (p: FigurePoint) => Math.max(p.y, p.high ?? p.y),
          text: (p: FigurePoint) => formatNumber(p.y),
          dy: -7,
          fontSize: 10,
          className: 'xme-value',
        }),
        Plot.ruleY([0]),
      ];
  }
}

/** The legend, in SVG: a swatch and a label per entry, wrapped into rows of the figure's width. */
function legendSvg(entries: readonly string[]): { svg: string; height: number } {
  const rowHeight = 18;
  let x = 0;
  let y = 0;
  const items = entries.map((entry, i) => {
    const width = 14 + 6 + entry.length * 6.6 + 18;
    if (x > 0 && x + width > WIDTH) {
      x = 0;
      y += rowHeight;
    }
    const item = `<g class="xme-legend-item" transform="translate(${x.toFixed(1)},${y})"><rect width="12" height="12" y="1" fill="${PALETTE[i % PALETTE.length]}"/><text x="18" y="11">${escapeXml(entry)}</text></g>`;
    x += width;
    return item;
  });
  return { svg: `<g class="xme-legend" font-size="12" transform="translate(8,6)">${items.join('')}</g>`, height: y + rowHeight + 10 };
}

/**
 * Bar panels side by side get too narrow to read beyond a few (a suite's report has one per run): then the
 * panels are stacked as rows instead, each with the figure's full width.
 */
const MOST_PANELS_ACROSS = 3;

function stackedIfCrowded(figure: DrawnFigure): DrawnFigure {
  const across = new Set(figure.points.map((p) => p.fx).filter((fx) => fx !== undefined)).size;
  if (figure.kind !== 'bars' || across <= MOST_PANELS_ACROSS || figure.points.some((p) => p.fy !== undefined)) return figure;
  return { ...figure, points: figure.points.map(({ fx, ...point }) => ({ ...point, fy: fx })), fyDomain: figure.fxDomain, fxDomain: [] };
}

/** Width of one character of an 11 px tick label, a little over the average of system-ui's glyphs. */
const TICK_CHAR_WIDTH = 6.4;
/** Bottom margin of a bar figure whose category labels are level (room for them and the axis label). */
const LEVEL_BAR_MARGIN_BOTTOM = 56;

/**
 * Category labels under bars (strategy names) are written level while they fit their band; when the longest
 * line of one is wider (eight strategies in one panel: "semantic-pagecache" beside "semantic-free"), they would
 * run into each other, so they are turned 35° and the bottom margin grows to hold them.
 */
function xTickLayout(figure: DrawnFigure, plotWidth: number): { tickRotate: number; marginBottom: number } {
  if (figure.kind !== 'bars' && figure.kind !== 'stacked') return { tickRotate: 0, marginBottom: 44 };
  const labels = [...new Set(figure.points.map((p) => String(p.x)))].map((label) => label.split('\n'));
  const panels = Math.max(1, new Set(figure.points.map((p) => p.fx).filter((fx) => fx !== undefined)).size);
  const band = plotWidth / panels / Math.max(1, labels.length);
  const longest = Math.max(0, ...labels.flat().map((line) => line.length)) * TICK_CHAR_WIDTH;
  if (longest <= band * 0.95) return { tickRotate: 0, marginBottom: LEVEL_BAR_MARGIN_BOTTOM };
  const angle = 35;
  const lineCount = Math.max(1, ...labels.map((lines) => lines.length));
  return { tickRotate: -angle, marginBottom: Math.ceil(34 + longest * Math.sin((angle * Math.PI) / 180) + lineCount * 12) };
}

/** The figure as standalone SVG markup (with xmlns: a file of its own as it is). */
export function drawFigure(given: DrawnFigure): string {
  const figure = stackedIfCrowded(given);
  const { document } = parseHTML('<!doctype html><html><body></body></html>');
  const hasFy = figure.points.some((p) => p.fy !== undefined);
  const hasFx = figure.points.some((p) => p.fx !== undefined);
  const rows = hasFy ? new Set(figure.points.map((p) => p.fy)).size : 1;
  const longestFy = hasFy ? Math.max(...figure.points.map((p) => (p.fy ?? '').length)) : 0;
  const height = figure.kind !== 'lines' && figure.kind !== 'means' ? Math.max(360, rows * 150 + 70) : Math.max(300, rows * 190 + 70);
  const memories = [...new Set(figure.points.map((p) => p.x))].sort((a, b) => Number(a) - Number(b));
  // Bars carry their value above them: room for it above the highest bar (or CI).
  const top = Math.max(...figure.points.map((p) => Math.max(p.y, p.high ?? p.y)));
  const yDomain = figure.kind === 'bars' ? [0, Math.max(figure.yDomain?.[1] ?? 0, top) * 1.08] : figure.yDomain;
  const marginLeft = 64;
  const marginRight = hasFy ? Math.max(40, longestFy * 6 + 16) : 20;
  const ticks = xTickLayout(figure, WIDTH - marginLeft - marginRight);
  // Turned labels take their room from below the plot, not from the bars.
  const plotHeight = figure.kind === 'bars' || figure.kind === 'stacked' ? height + ticks.marginBottom - LEVEL_BAR_MARGIN_BOTTOM : height;
  const plot = Plot.plot({
    document,
    className: `xme-plot-${figure.id}`,
    width: WIDTH,
    height: plotHeight,
    marginLeft,
    marginRight,
    marginBottom: ticks.marginBottom,
    marginTop: hasFx ? 34 : 20,
    style: { fontFamily: FONT, fontSize: '11px', background: 'white' },
    x: {
      label: figure.xLabel,
      labelAnchor: 'center',
      labelArrow: 'none',
      ...(ticks.tickRotate ? { tickRotate: ticks.tickRotate } : {}),
      // Memory sizes (128, 256, 512 MiB) as evenly spaced points: a sweep that doubles reads as a log2 axis.
      ...(figure.kind === 'means' ? { type: 'point' as const, domain: memories, tickFormat: (d: number) => `${d}` } : {}),
    },
    y: {
      label: figure.yLabel,
      type: figure.yScale,
      grid: true,
      labelArrow: 'none',
      ...(yDomain ? { domain: yDomain } : { nice: true }),
      ...(figure.yScale === 'linear' && !yDomain ? { zero: true } : {}),
    },
    color: { type: 'ordinal', domain: figure.legend, range: PALETTE },
    fx: { label: null, ...(hasFx ? { domain: figure.fxDomain } : {}) },
    fy: { label: null, ...(hasFy ? { domain: figure.fyDomain } : {}) },
    marks: marks(figure),
  }) as unknown as { outerHTML: string };
  const plotSvg = plot.outerHTML;
  const legend = legendSvg(figure.legend);
  const totalHeight = legend.height + plotHeight;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="xme-figure" data-figure="${figure.id}" width="${WIDTH}" height="${totalHeight}" viewBox="0 0 ${WIDTH} ${totalHeight}" font-family="${escapeXml(FONT)}" role="img" aria-label="${escapeXml(figure.title)}">`,
    `<title>${escapeXml(figure.title)}</title>`,
    `<rect width="100%" height="100%" fill="white"/>`,
    legend.svg,
    plotSvg.replace(/^<svg /, `<svg x="0" y="${legend.height}" `),
    '</svg>',
  ].join('');
}
