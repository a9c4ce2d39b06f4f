/**
 * report.html: one self-contained file. The runs it covers, each figure inline (its SVG from draw.ts) with a
 * caption that says what is measured, the units, n, the method and the runs, a short note for each figure
 * that has no data, and a table of every summary.csv row. No script, no stylesheet or font from elsewhere, no
 * absolute link: it opens the same from a results folder, a mail attachment or a machine without network.
 */
import type { FigureData } from './figure-data.ts';
import { summaryTable, tagRuns } from './figure-data.ts';
import type { ReportRun } from './read-results.ts';
import { escapeXml } from './draw.ts';

export interface HtmlFigure {
  figure: FigureData;
  /** The figure's SVG (drawn figures only). */
  svg?: string;
  /** Its file, relative to report.html (figures/<id>.svg). */
  file?: string;
}

export interface HtmlInput {
  runs: readonly ReportRun[];
  figures: readonly HtmlFigure[];
  /** When the report was made (ISO time). */
  generatedAt: string;
  /** The harness commit that drew it, if known. */
  harnessCommit?: string;
}

const STYLE = `
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; margin: 2rem auto; max-width: 64rem; padding: 0 1rem; color: #222; line-height: 1.4; }
  h1 { font-size: 1.5rem; margin-bottom: .25rem; }
  h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
  .meta { color: #555; font-size: .9rem; }
  table { border-collapse: collapse; font-size: .8rem; margin: .5rem 0 1rem; }
  th, td { border-bottom: 1px solid #ddd; padding: .2rem .5rem; text-align: left; vertical-align: top; }
  td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  td.method { color: #555; max-width: 28rem; }
  figure { margin: 1rem 0 2rem; }
  figure svg { max-width: 100%; height: auto; }
  figcaption { font-size: .85rem; color: #333; }
  figcaption dl { display: grid; grid-template-columns: max-content 1fr; gap: .1rem .75rem; margin: .5rem 0; }
  figcaption dt { font-weight: 600; }
  figcaption dd { margin: 0; }
  figcaption ul { margin: 0; padding-left: 1.1rem; }
  .note { color: #8a5a00; }
  section.omitted { border-left: 3px solid #ccc; padding-left: .75rem; color: #555; }
  .warn { color: #a33; }
`;

const fmt = (value: number | undefined) => {
  if (value === undefined) return '–';
  if (Number.isInteger(value)) return value.toLocaleString('en');
  return Number(value.toPrecision(5)).toLocaleString('en', { maximumFractionDigits: 6 });
};

function runsTable(runs: readonly ReportRun[]): string {
  const tagged = tagRuns(runs);
  const several = runs.length > 1;
  const rows = tagged.map(({ run, tag }) => {
    const i = run.info;
    const memories = [...new Set([...(run.samples ?? []).map((s) => s.memory_mib), ...(run.summary ?? []).map((r) => r.memory_mib)])].sort((a, b) => a - b);
    const strategies = [...new Set([...(run.samples ?? []).map((s) => s.strategy), ...(run.summary ?? []).map((r) => r.strategy)])];
    const files = [run.samples ? 'samples.csv' : 'no samples.csv', run.summary ? 'summary.csv' : 'no summary.csv'].join(', ');
    const text = (value: string) => `<td>${escapeXml(value)}</td>`;
    const cells = [
      ...(several ? [text(tag)] : []),
      text(i.runId),
      text(i.scenario),
      i.status === 'completed' ? text(i.status) : `<td class="warn">${escapeXml(i.status)}</td>`,
      text(i.kaslr === undefined ? 'not recorded' : i.kaslr ? 'on' : 'off (nokaslr)'),
      text(`${i.guests?.join(', ') ?? '?'} × ${memories.map((m) => `${m} MiB`).join(', ') || '?'}`),
      text(i.workload ?? '–'),
      text(strategies.join(', ') || '–'),
      text(i.backend ?? '–'),
      text(i.kernel ?? '–'),
      text(files),
    ];
    return `<tr>${cells.join('')}</tr>`;
  });
  const header = [...(several ? ['tag'] : []), 'run', 'scenario', 'status', 'KASLR', 'guests × memory', 'workload', 'strategies', 'backend', 'kernel', 'files'];
  return `<table class="runs"><thead><tr>${header.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function runWarnings(runs: readonly ReportRun[]): string {
  const lines = runs.flatMap((run) => [
    ...(run.info.status !== 'completed'
      ? [`${run.info.runId} is ${run.info.status}, not completed: its figures cover what was measured before it ended.`]
      : []),
    ...run.info.warnings.map((w) => `${run.info.runId}: ${w}`),
  ]);
  return lines.length ? `<ul class="warn">${lines.map((l) => `<li>${escapeXml(l)}</li>`).join('')}</ul>` : '';
}

function figureHtml({ figure, svg, file }: HtmlFigure, number: number): string {
  if (!figure.drawn) {
    return `<section class="omitted" id="fig-${figure.id}" data-figure="${figure.id}" data-drawn="false"><h2>Figure ${number}. ${escapeXml(figure.title)}</h2><p>Not drawn: ${escapeXml(figure.reason)}.</p></section>`;
  }
  const c = figure.caption;
  const list = (items: readonly string[]) => (items.length === 1 ? escapeXml(items[0]!) : `<ul>${items.map((m) => `<li>${escapeXml(m)}</li>`).join('')}</ul>`);
  return [
    `<figure id="fig-${figure.id}" data-figure="${figure.id}" data-drawn="true" data-kind="${figure.kind}" data-series="${figure.series.length}" data-points="${figure.points.length}" data-ci="${figure.points.filter((p) => p.low !== undefined && p.high !== undefined).length}">`,
    `<h2>Figure ${number}. ${escapeXml(figure.title)}</h2>`,
    svg ?? '',
    '<figcaption><dl>',
    `<dt>Measures</dt><dd>${escapeXml(c.measures)}</dd>`,
    `<dt>Units</dt><dd>${escapeXml(c.units)}</dd>`,
    `<dt>n</dt><dd>${escapeXml(c.n)}</dd>`,
    `<dt>Method</dt><dd>${list(c.method)}</dd>`,
    `<dt>Runs</dt><dd>${list(c.runs)}</dd>`,
    ...(file ? [`<dt>File</dt><dd><a href="${escapeXml(file)}">${escapeXml(file)}</a></dd>`] : []),
    '</dl>',
    ...figure.notes.map((n) => `<p class="note">${escapeXml(n)}</p>`),
    '</figcaption></figure>',
  ].join('\n');
}

function summaryHtml(runs: readonly ReportRun[]): string {
  const rows = summaryTable(runs);
  if (!rows.length) return '<section class="omitted" id="summary-table"><h2>Summary</h2><p>Not drawn: no run has a summary.csv with rows.</p></section>';
  const several = runs.length > 1;
  const header = [...(several ? ['run'] : []), 'memory', 'strategy', 'metric', 'n', 'mean', 'sd', '95% CI', 'unit', 'method'];
  const body = rows.map(({ tag, row }) => {
    const ciText = row.ci95_low !== undefined && row.ci95_high !== undefined ? `${fmt(row.ci95_low)} – ${fmt(row.ci95_high)}` : '–';
    return `<tr>${[
      ...(several ? [`<td>${escapeXml(tag)}</td>`] : []),
      `<td class="num">${row.memory_mib} MiB</td>`,
      `<td>${escapeXml(row.strategy)}</td>`,
      `<td>${escapeXml(row.metric)}</td>`,
      `<td class="num">${row.n}</td>`,
      `<td class="num">${fmt(row.mean)}</td>`,
      `<td class="num">${fmt(row.sd)}</td>`,
      `<td class="num">${ciText}</td>`,
      `<td>${escapeXml(row.unit)}</td>`,
      `<td class="method">${escapeXml(row.method ?? '')}</td>`,
    ].join('')}</tr>`;
  });
  return [
    '<section id="summary-table"><h2>Summary: every metric</h2>',
    '<p class="meta">From summary.csv: mean over repetitions, sd, and the 95% confidence interval (Student t; none for n = 1).</p>',
    `<table class="summary" data-rows="${rows.length}"><thead><tr>${header.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>`,
    ...body,
    '</tbody></table></section>',
  ].join('\n');
}

export function reportHtml(input: HtmlInput): string {
  const title = input.runs.length === 1 ? `xme report — ${input.runs[0]!.info.runId}` : `xme report — ${input.runs.length} runs`;
  return [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head><body>',
    `<h1>${escapeXml(title)}</h1>`,
    `<p class="meta">Made by xme report at ${escapeXml(input.generatedAt)}${input.harnessCommit ? ` (harness ${escapeXml(/^[0-9a-f]{40}$/.test(input.harnessCommit) ? input.harnessCommit.slice(0, 12) : input.harnessCommit)})` : ''} from the results folders' run.json, samples.csv and summary.csv.</p>`,
    runsTable(input.runs),
    runWarnings(input.runs),
    ...input.figures.map((f, i) => figureHtml(f, i + 1)),
    summaryHtml(input.runs),
    '</body></html>',
    '',
  ].join('\n');
}
