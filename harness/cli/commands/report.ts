import path from 'node:path';
import type { Argv } from 'yargs';
import { resolveRunDir } from '../../results/run-folder.ts';
import { mergedRunDirs } from '../../suite/merge.ts';
import { resultsDir } from '../../util/paths.ts';
import { UsageError } from '../../util/errors.ts';
import { harnessInfo } from '../../results/provenance.ts';

/** What --help says about the figures. */
export const REPORT_FIGURES = [
  'Figures (each with its method, n, units and the runs it comes from; one whose data no run has is left out with a note):',
  '1 shared pages, frames saved and host frames saved over time, per strategy (samples.csv);',
  '2 cumulative CoW faults over time per strategy, naming the CoW method and whether its count is a lower or an upper bound (samples.csv);',
  '3 CPU per scan and per tick against guest memory, mean with 95% CI (summary.csv scan_cpu_ms, tick_cpu_ms);',
  '4 kernel code and rodata shareability per run, labelled by KASLR (summary.csv);',
  '5 guest throughput per strategy, when the workload reports operations (summary.csv workload_ops_per_s);',
  'then a table of every summary.csv metric: mean, sd, 95% CI, unit, method.',
].join('\n');

export function registerReportCommand(cli: Argv): Argv {
  return cli.command(
    'report <runs..>',
    'draw a run’s figures: report.html (one self-contained file) and figures/*.svg',
    (y) =>
      y
        .positional('runs', {
          type: 'string',
          array: true,
          demandOption: true,
          describe: 'results folders (results/<run-id>/, or a run id under results/), or a folder of xme merge',
        })
        .option('out', { alias: 'o', type: 'string', describe: 'where report.html and figures/ go (default for one run: its folder; required for several)' })
        .option('results', { type: 'string', describe: 'where a bare run id is looked up (default: results/, or $XME_RESULTS)' })
        .check((args) => {
          if ((args.runs as string[]).length > 1 && args.out === undefined)
            throw new UsageError('several runs need --out DIR: their report goes into no single run’s folder');
          return true;
        })
        .example('xme report results/20261127-130734-thesis-kernel-code', 'report.html and figures/ in that run’s folder')
        .example('xme report A B --out reports/kaslr', 'two runs in one report (legends tag them R1, R2)')
        .epilogue(REPORT_FIGURES),
    async (args) => {
      // A folder of xme merge stands for its results folders (one per scenario variant), reported together into it.
      const given = (args.runs as string[]).map((run) => resolveRunDir(run, args.results ?? resultsDir()));
      const dirs = given.flatMap((dir) => mergedRunDirs(dir) ?? [dir]);
      const out = args.out ?? (given.length === 1 && dirs.length > 1 ? given[0] : undefined);
      // Loaded here, not at start-up: the drawing libraries take a moment to load.
      const { reportFolders } = await import('../../report/report.ts');
      const files = reportFolders(dirs, out === undefined ? undefined : path.resolve(out), { harnessCommit: harnessInfo().gitCommit });
      process.stdout.write(`${files.html}\n`);
      for (const figure of files.figures) process.stdout.write(`  ${path.relative(files.dir, figure.file)}\n`);
      for (const { id, reason, notAsked } of files.omitted) if (!notAsked) process.stderr.write(`note: figure '${id}' not drawn: ${reason}\n`);
    },
  );
}
