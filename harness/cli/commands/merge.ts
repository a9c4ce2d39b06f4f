import path from 'node:path';
import type { Argv } from 'yargs';
import { mergeShards } from '../../suite/merge.ts';
import { harnessInfo } from '../../results/provenance.ts';

export function registerMergeCommand(cli: Argv): Argv {
  return cli.command(
    'merge <shards..>',
    'combine the shard folders of one suite into one folder (a results folder per scenario variant, summaries recomputed over all repetitions) and draw its report',
    (y) =>
      y
        .positional('shards', { type: 'string', array: true, demandOption: true, describe: 'shard folders written by xme suite run' })
        .option('out', { alias: 'o', type: 'string', demandOption: true, describe: 'the merged folder (new or empty)' })
        .option('allow-missing', {
          type: 'boolean',
          default: false,
          describe: 'merge even if cells are missing (they are listed in suite.json and run.json warnings)',
        })
        .example('xme merge results/thesis.shard-*-of-4 --out results/thesis', 'four shards into one')
        .epilogue(
          'Refused: shards of different suites (or quick and full), of different xme versions or commits, booting images with different sha256s, a cell in two folders, missing cells (unless --allow-missing).',
        ),
    async (args) => {
      const outcome = mergeShards(args.shards as string[], { out: args.out, allowMissing: args.allowMissing });
      for (const id of outcome.missing) process.stderr.write(`warning: cell ${id} is missing (merged with --allow-missing)\n`);
      // Loaded here, not at start-up: the drawing libraries take a moment to load.
      const { reportFolders } = await import('../../report/report.ts');
      const report = reportFolders(outcome.variantDirs, outcome.out, { harnessCommit: harnessInfo().gitCommit });
      process.stdout.write(`merged ${outcome.cells} cells into ${outcome.out}\n`);
      for (const dir of outcome.variantDirs) process.stdout.write(`  ${path.relative(outcome.out, dir)}/\n`);
      process.stdout.write(`  ${path.relative(outcome.out, report.html)}\n`);
    },
  );
}
