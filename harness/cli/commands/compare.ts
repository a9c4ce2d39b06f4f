import type { Argv } from 'yargs';
import { compareRuns } from '../../compare/compare-runs.ts';
import { differenceLines, FORMATS, formatReport } from '../../compare/format.ts';
import { resultsDir } from '../../util/paths.ts';
import { UsageError } from '../../util/errors.ts';

/** What --help says about the method. */
export const COMPARE_METHOD = [
  'Method. Rows are paired by scenario × memory × strategy × metric from each run’s summary.csv; with more than two runs each is compared against the first (the baseline, A).',
  'n is the number of repetitions that measured the metric: each repetition boots fresh guests and gives one value per metric (e.g. the last tick’s count, or the mean over its ticks); ticks are never counted as n.',
  'Each mean is shown with its 95% confidence interval (Student t over the repetitions). "B vs A" is (mean B − mean A) / |mean A| in %.',
  'Significance: Welch’s t-test (unequal variances) from the means, sds and n: t = (mean B − mean A) / √(sA²/nA + sB²/nB), Welch–Satterthwaite degrees of freedom, two-sided p from the t distribution.',
  '"significant" when p < 0.05 (95%); otherwise "not significant": the repetitions cannot tell the means apart (not: they are equal). With fewer than 2 repetitions on a side there is no spread to judge by: "n < 2: cannot judge".',
  'A row present in one run only is listed as missing in the other. A metric in different units in the two runs is refused. A run whose run.json status is not "completed" is compared, with a warning.',
].join('\n\n');

export function registerCompareCommand(cli: Argv): Argv {
  return cli.command(
    'compare <runs..>',
    'compare runs: each metric’s mean with its 95% CI, the change in %, and whether it is significant (Welch’s t-test)',
    (y) =>
      y
        .positional('runs', {
          type: 'string',
          array: true,
          demandOption: true,
          describe: 'results folders (results/<run-id>/, or a run id under results/); the first is the baseline',
        })
        .option('format', { choices: FORMATS, default: 'table' as const, describe: 'table (console), md (markdown) or csv' })
        .option('metric', { type: 'string', array: true, describe: 'only this metric (summary.csv name, e.g. scan_cpu_ms); repeat for several' })
        .option('ignore-scenario', {
          type: 'boolean',
          default: false,
          describe: 'pair rows of runs of different scenarios (e.g. cow-faults vs cow-faults-own-data) by memory × strategy × metric',
        })
        .option('results', { type: 'string', describe: 'where a bare run id is looked up (default: results/, or $XME_RESULTS)' })
        .check((args) => {
          if ((args.runs as string[]).length < 2) throw new UsageError('compare needs at least two results folders: the baseline and a run to compare with it');
          return true;
        })
        .example('xme compare results/A results/B', 'B against A, as a console table')
        .example('xme compare results/A results/B results/C --format md', 'B and C each against A, as markdown')
        .example('xme compare A B --metric scan_cpu_ms --metric shared_pages --format csv', 'two metrics, as CSV')
        .epilogue(COMPARE_METHOD),
    (args) => {
      const report = compareRuns(args.runs as string[], {
        metrics: args.metric,
        ignoreScenario: args.ignoreScenario,
        resultsRoot: args.results ?? resultsDir(),
      });
      // CSV stays machine-readable: its warnings go to stderr. Table and markdown carry them in the output.
      if (args.format === 'csv')
        for (const line of [...report.warnings.map((w) => `warning: ${w}`), ...differenceLines(report)]) process.stderr.write(`${line}\n`);
      process.stdout.write(formatReport(report, args.format));
    },
  );
}
