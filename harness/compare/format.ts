/** `xme compare` output: a console table, markdown, or CSV. */
import { stringify } from 'csv-stringify/sync';
import type { SummaryRow } from '../results/summary.ts';
import type { CompareReport, ComparedRow, Comparison, ResultsRun } from './compare-runs.ts';

export const FORMATS = ['table', 'md', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

/** One line on how to read the figures, printed under the table and the markdown. */
export const METHOD_LINE =
  'n = repetitions (each boots fresh guests and gives one value per metric); CI = Student t 95% of the mean; ' +
  "B vs A = (B − A) / |A|; significant = Welch's t-test, two-sided, p < 0.05";

/** The verdict of a row: 'significant', 'not significant', 'n < 2: cannot judge', 'missing in A', 'missing in B'. */
export function verdictText(row: ComparedRow): string {
  if (!row.a) return 'missing in A';
  if (!row.b) return 'missing in B';
  const judgement = row.judgement!;
  if (judgement.verdict === 'cannot judge') return `${judgement.reason}: cannot judge`;
  return judgement.verdict;
}

/** A figure for people: 4 significant digits, thousands grouped from 1,000 on. */
export function formatNumber(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1000) return Math.round(value).toLocaleString('en');
  if (magnitude < 0.001) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

function meanCell(row: SummaryRow | undefined): string {
  if (!row) return '–';
  const mean = formatNumber(row.mean);
  if (row.ci95_low === undefined || row.ci95_high === undefined) return mean;
  return `${mean} [${formatNumber(row.ci95_low)}, ${formatNumber(row.ci95_high)}]`;
}

function changeCell(row: ComparedRow): string {
  if (row.changePct === undefined) return '–';
  const magnitude = Math.abs(row.changePct);
  const text = magnitude >= 1000 ? Math.round(row.changePct).toLocaleString('en') : row.changePct.toFixed(magnitude < 1 ? 2 : 1);
  return `${row.changePct > 0 ? '+' : ''}${text}%`;
}

function pCell(row: ComparedRow): string {
  const p = row.judgement?.welch?.p;
  if (p === undefined) return '–';
  if (p === 0) return '0';
  return p < 0.001 ? '<0.001' : p.toFixed(3);
}

function describeRun(run: ResultsRun): string {
  return `${run.runId} (${run.scenario}, ${run.status})`;
}

function heading(comparison: Comparison): string {
  return `B = ${describeRun(comparison.run)} vs A = ${describeRun(comparison.baseline)}, the baseline`;
}

/** The cells of a row, in the order of HEADER; the scenario column only when `withScenario`. */
function cells(row: ComparedRow, withScenario: boolean): string[] {
  const n = `${row.a?.n ?? '–'}/${row.b?.n ?? '–'}`;
  return [
    ...(withScenario ? [row.scenario] : []),
    `${row.guests !== undefined ? `${row.guests} × ` : ''}${row.memoryMiB} MiB`,
    row.strategy,
    row.metric,
    row.unit,
    n,
    meanCell(row.a),
    meanCell(row.b),
    changeCell(row),
    pCell(row),
    verdictText(row),
  ];
}

const HEADER = ['memory', 'strategy', 'metric', 'unit', 'n A/B', 'A mean [95% CI]', 'B mean [95% CI]', 'B vs A', 'p', 'verdict'];
/** Columns aligned right in the console table (numbers), by header name. */
const RIGHT = new Set(['n A/B', 'A mean [95% CI]', 'B mean [95% CI]', 'B vs A', 'p']);

/** The scenario column is shown when the rows are not all of the one scenario of both runs. */
function needsScenarioColumn(comparison: Comparison): boolean {
  const scenarios = new Set([comparison.baseline.scenario, comparison.run.scenario, ...comparison.rows.map((row) => row.scenario)]);
  return scenarios.size > 1;
}

/**
 * The settings in which the runs differ, one line each ("KASLR: R1 off (nokaslr), R2 on"), runs tagged in
 * the order given (R1 = the baseline); empty when they were made alike.
 */
export function differenceLines(report: CompareReport): string[] {
  if (report.differences.length === 0) return [];
  const tags = report.runs.map((run, i) => `R${i + 1} = ${run.runId}`).join(', ');
  return [
    `the runs differ in ${report.differences.map((d) => d.name).join(', ')} (${tags}):`,
    ...report.differences.map((d) => `  ${d.name}: ${d.values.map((v, i) => `R${i + 1} ${v}`).join('; ')}`),
  ];
}

/** The console table: warnings and differing settings, then per compared run a heading and an aligned table, then how to read it. */
export function formatTable(report: CompareReport): string {
  const out: string[] = [...report.warnings.map((warning) => `warning: ${warning}`), ...differenceLines(report)];
  for (const comparison of report.comparisons) {
    if (out.length > 0) out.push('');
    out.push(heading(comparison));
    const withScenario = needsScenarioColumn(comparison);
    const header = [...(withScenario ? ['scenario'] : []), ...HEADER];
    const body = comparison.rows.map((row) => cells(row, withScenario));
    if (body.length === 0) {
      out.push('  (no rows)');
      continue;
    }
    const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
    const line = (row: string[]) =>
      row
        .map((cell, i) => (RIGHT.has(header[i]!) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd();
    out.push(line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line));
  }
  out.push('', METHOD_LINE);
  return `${out.join('\n')}\n`;
}

function markdownCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|');
}

/** Markdown: per compared run a heading and a table; warnings as quoted lines. */
export function formatMarkdown(report: CompareReport): string {
  const out: string[] = [];
  if (report.warnings.length > 0) out.push(...report.warnings.map((warning) => `> **warning:** ${markdownCell(warning)}`), '');
  const differences = differenceLines(report);
  if (differences.length > 0) out.push(...differences.map((line) => `> ${markdownCell(line.trim())}`), '');
  for (const comparison of report.comparisons) {
    out.push(`### ${markdownCell(heading(comparison))}`, '');
    const withScenario = needsScenarioColumn(comparison);
    const header = [...(withScenario ? ['scenario'] : []), ...HEADER];
    if (comparison.rows.length === 0) {
      out.push('(no rows)', '');
      continue;
    }
    const row = (values: string[]) => `| ${values.map(markdownCell).join(' | ')} |`;
    out.push(row(header), `|${header.map((h) => (RIGHT.has(h) ? '---:' : '---')).join('|')}|`);
    for (const compared of comparison.rows) out.push(row(cells(compared, withScenario)));
    out.push('');
  }
  out.push(`_${METHOD_LINE}_`);
  return `${out.join('\n')}\n`;
}

/**
 * The CSV columns. mean_*, sd_*, ci95_*, difference: in the row's `unit`; difference_pct: % of A's mean;
 * t: Welch's t (B − A); df: Welch–Satterthwaite degrees of freedom; p_value: two-sided.
 */
export const CSV_COLUMNS = [
  'baseline_run',
  'baseline_status',
  'run',
  'run_status',
  'scenario',
  'guests',
  'memory_mib',
  'strategy',
  'metric',
  'unit',
  'n_a',
  'mean_a',
  'sd_a',
  'ci95_low_a',
  'ci95_high_a',
  'n_b',
  'mean_b',
  'sd_b',
  'ci95_low_b',
  'ci95_high_b',
  'difference',
  'difference_pct',
  't',
  'df',
  'p_value',
  'verdict',
] as const;

/** Like CsvAppender: integers as they are, other numbers to 6 significant digits, undefined as empty. */
function csvNumber(value: number | undefined): string {
  if (value === undefined) return '';
  if (!Number.isFinite(value)) return String(value);
  return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
}

/** CSV: one row per compared run × row (warnings are not in it: the CLI prints them on stderr). */
export function formatCsv(report: CompareReport): string {
  const rows: string[][] = [[...CSV_COLUMNS]];
  for (const comparison of report.comparisons) {
    for (const row of comparison.rows) {
      const welch = row.judgement?.welch;
      const side = (r: SummaryRow | undefined) => [csvNumber(r?.n), csvNumber(r?.mean), csvNumber(r?.sd), csvNumber(r?.ci95_low), csvNumber(r?.ci95_high)];
      rows.push([
        comparison.baseline.runId,
        comparison.baseline.status,
        comparison.run.runId,
        comparison.run.status,
        row.scenario,
        csvNumber(row.guests),
        csvNumber(row.memoryMiB),
        row.strategy,
        row.metric,
        row.unit,
        ...side(row.a),
        ...side(row.b),
        csvNumber(row.a && row.b ? row.b.mean - row.a.mean : undefined),
        csvNumber(row.changePct),
        csvNumber(welch?.t),
        csvNumber(welch?.df),
        csvNumber(welch?.p),
        verdictText(row),
      ]);
    }
  }
  return stringify(rows);
}

export function formatReport(report: CompareReport, format: Format): string {
  if (format === 'md') return formatMarkdown(report);
  if (format === 'csv') return formatCsv(report);
  return formatTable(report);
}
