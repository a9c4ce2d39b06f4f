/**
 * `xme report`: results folders → report.html + figures/<id>.svg. Read (read-results.ts), decide what each
 * figure shows (figure-data.ts), draw it (draw.ts), assemble the page (html.ts). Synchronous from end to end,
 * so that the ReportWriter can make a report at the end of a run, from the exit handler too.
 */
import fs from 'node:fs';
import path from 'node:path';
import { buildFigures, type FigureData, type FigureId, FIGURE_IDS } from './figure-data.ts';
import { drawFigure } from './draw.ts';
import { reportHtml, type HtmlFigure } from './html.ts';
import { readReportRun, type ReadOptions, type ReportRun } from './read-results.ts';

export interface ReportFiles {
  /** The folder report.html and figures/ were written to. */
  dir: string;
  /** Path of report.html. */
  html: string;
  /** Drawn figures: their id and SVG file (absolute path). */
  figures: { id: FigureId; file: string }[];
  /** Figures not drawn, and why (notAsked: the runs did not set out to measure it). */
  omitted: { id: FigureId; reason: string; notAsked: boolean }[];
}

export interface BuiltReport {
  html: string;
  figures: FigureData[];
  /** The SVG of each drawn figure, with its path relative to report.html. */
  svgs: { id: FigureId; file: string; svg: string }[];
}

export interface BuildOptions {
  /** When the report is made (default: now); fixed in tests. */
  generatedAt?: string;
  harnessCommit?: string;
}

/** The report's page and figures in memory: nothing is read or written. */
export function buildReport(runs: readonly ReportRun[], options: BuildOptions = {}): BuiltReport {
  const figures = buildFigures(runs);
  const svgs: BuiltReport['svgs'] = [];
  const htmlFigures: HtmlFigure[] = figures.map((figure) => {
    if (!figure.drawn) return { figure };
    const svg = drawFigure(figure);
    const file = `figures/${figure.id}.svg`;
    svgs.push({ id: figure.id, file, svg });
    return { figure, svg, file };
  });
  const html = reportHtml({ runs, figures: htmlFigures, generatedAt: options.generatedAt ?? new Date().toISOString(), harnessCommit: options.harnessCommit });
  return { html, figures, svgs };
}

function writeAtomically(file: string, text: string): void {
  const temporary = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temporary, text);
  fs.renameSync(temporary, file);
}

/**
 * Writes report.html and figures/<id>.svg into `outDir` (made if missing). A figure file of an earlier report
 * that is not drawn this time is removed, so that figures/ never shows data the report no longer has.
 */
export function writeReport(runs: readonly ReportRun[], outDir: string, options: BuildOptions = {}): ReportFiles {
  const built = buildReport(runs, options);
  const figuresDir = path.join(outDir, 'figures');
  fs.mkdirSync(figuresDir, { recursive: true });
  for (const { file, svg } of built.svgs) writeAtomically(path.join(outDir, file), `${svg}\n`);
  const drawn = new Set(built.svgs.map((s) => s.id));
  for (const id of FIGURE_IDS) if (!drawn.has(id)) fs.rmSync(path.join(figuresDir, `${id}.svg`), { force: true });
  const html = path.join(outDir, 'report.html');
  writeAtomically(html, built.html);
  return {
    dir: outDir,
    html,
    figures: built.svgs.map(({ id, file }) => ({ id, file: path.join(outDir, file) })),
    omitted: built.figures.flatMap((f) => (f.drawn ? [] : [{ id: f.id, reason: f.reason, notAsked: f.notAsked === true }])),
  };
}

/** Reads results folders and writes their report into `outDir` (default: the folder, when there is one). */
export function reportFolders(dirs: readonly string[], outDir: string | undefined, options: BuildOptions & ReadOptions = {}): ReportFiles {
  if (dirs.length === 0) throw new Error('reportFolders: no results folder');
  if (outDir === undefined && dirs.length > 1) throw new Error('reportFolders: several runs need an output folder');
  const runs = dirs.map((dir) => readReportRun(dir, dirs.length === 1 ? options : {}));
  return writeReport(runs, outDir ?? dirs[0]!, options);
}
