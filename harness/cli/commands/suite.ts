import { runWithOutputs } from '../run-outputs.ts';
import path from 'node:path';
import type { Argv } from 'yargs';
import { listSuites, loadSuite } from '../../suite/suite.ts';
import { expandSuite } from '../../suite/cells.ts';
import { parseShard, shardOf } from '../../suite/shard.ts';
import { requireCompleted, runShard } from '../../suite/run-shard.ts';
import { resultsDir } from '../../util/paths.ts';
import { UsageError } from '../../util/errors.ts';

export function registerSuiteCommands(cli: Argv): Argv {
  return cli.command('suite', 'run a suite of scenarios (suites/<name>.json), whole or as one shard of N', (y) =>
    y
      .command(
        'list <suite>',
        'print the suite’s cells (scenario variant × memory × repetition), their seeds and the shard each goes to',
        (b) =>
          b
            .positional('suite', { type: 'string', demandOption: true, describe: `suite name (${listSuites().join(', ')}) or path to a .json file` })
            .option('quick', { type: 'boolean', default: false, describe: 'the suite’s quick version (its "quick" block: CI-sized)' })
            .option('shards', { type: 'number', default: 1, describe: 'into how many shards the cells are split' })
            .option('ids', { type: 'boolean', default: false, describe: 'print only the cell ids, one a line' })
            .check((args) => {
              if (!Number.isInteger(args.shards) || args.shards < 1) throw new UsageError(`--shards must be an integer of at least 1, got ${args.shards}`);
              return true;
            }),
        (args) => {
          const suite = expandSuite(loadSuite(args.suite), { quick: args.quick });
          if (args.ids) {
            for (const cell of suite.cells) process.stdout.write(`${cell.id}\n`);
            return;
          }
          process.stdout.write(
            `suite ${suite.suite}${suite.quick ? ' (quick)' : ''}: ${suite.cells.length} cells in ${args.shards} shard${args.shards > 1 ? 's' : ''} (cell index mod ${args.shards}), digest ${suite.digest.slice(0, 12)}\n`,
          );
          const width = Math.max(...suite.cells.map((c) => c.id.length));
          process.stdout.write(`shard  ${'cell'.padEnd(width)}  seed\n`);
          for (const cell of suite.cells) process.stdout.write(`${String(shardOf(cell, args.shards)).padStart(5)}  ${cell.id.padEnd(width)}  ${cell.seed}\n`);
        },
      )
      .command(
        'run <suite>',
        'run the suite’s cells, or one shard of them, into a shard folder (one results folder per cell); xme merge combines shards',
        (b) =>
          b
            .positional('suite', { type: 'string', demandOption: true, describe: `suite name (${listSuites().join(', ')}) or path to a .json file` })
            .option('quick', { type: 'boolean', default: false, describe: 'the suite’s quick version (its "quick" block: CI-sized)' })
            .option('shard', {
              type: 'string',
              default: '0/1',
              describe: 'run shard i of N (0-based: cells whose index mod N is i), or "slurm": SLURM_ARRAY_TASK_ID of SLURM_ARRAY_TASK_COUNT',
            })
            .option('results', { type: 'string', describe: 'parent folder of the shard folder (default: results/, or $XME_RESULTS)' })
            .option('accel', {
              choices: ['auto', 'tcg', 'kvm'] as const,
              default: 'auto' as const,
              describe: 'accelerator (auto: KVM only if a probe shows it really runs)',
            })
            .example('xme suite run thesis --quick', 'the CI-sized thesis suite on this machine, unsharded')
            .example('xme suite run thesis --shard 1/4 --results /scratch/thesis', 'the second of four shards')
            .example('sbatch --array=0-3 scripts/slurm/suite.sbatch thesis', 'four shards on Slurm, then a merge job (README)'),
        async (args) => {
          const suite = expandSuite(loadSuite(args.suite), { quick: args.quick });
          const shard = parseShard(args.shard);
          const started = Date.now();
          const outcome = await runShard({
            suite,
            shard,
            resultsRoot: path.resolve(args.results ?? resultsDir()),
            accelerator: args.accel,
            argv: process.argv.slice(2),
            onProgress: (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
            runCell: runWithOutputs,
          });
          const counts: Record<string, number> = {};
          for (const c of outcome.record.cells) counts[c.status] = (counts[c.status] ?? 0) + 1;
          process.stdout.write(
            `\nshard ${shard.index}/${shard.count} ${outcome.record.status} in ${((Date.now() - started) / 1000).toFixed(0)} s (${
              Object.entries(counts)
                .map(([k, v]) => `${v} ${k}`)
                .join(', ') || 'no cells'
            }) — ${outcome.dir}\n`,
          );
          requireCompleted(outcome);
        },
      )
      .demandCommand(1, 'name a suite command: list or run'),
  );
}
