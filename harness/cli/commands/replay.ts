import type { Argv } from 'yargs';
import { strategyFactories } from '../../../strategies/registry.ts';
import { replayRecording } from '../run-outputs.ts';
import { resultsDir } from '../../util/paths.ts';
import { XmeError } from '../../util/errors.ts';
import { ConsoleTableWriter } from '../console-table.ts';

export function registerReplayCommand(cli: Argv): Argv {
  return cli.command(
    'replay <recording>',
    'score strategies on a recording (xme run --record) with no VM and no hypervisor; writes the same CSVs as a run',
    (y) =>
      y
        .positional('recording', { type: 'string', demandOption: true, describe: "a recording folder, or a run's results folder that holds recording/" })
        .option('strategy', {
          type: 'string',
          array: true,
          describe: `strategies to score (default: the recorded run's; names: ${strategyFactories.map((f) => f.name).join(', ')}; not ksm: it is the live host's mechanism)`,
        })
        .option('results', { type: 'string', describe: 'parent folder of results/<run-id>/ (default: results/, or $XME_RESULTS)' })
        .example('xme replay results/20261127-190000-thesis-kernel-code', 'score the recorded run again, with its strategies')
        .example('xme replay results/<run-id>/recording --strategy hybrid --strategy content-incremental', 'try other strategies on the same memory')
        .epilogue('Every file of the recording is checked (size and sha256) before anything is scored; a damaged one is refused. Format: docs/recording.md'),
    async (args) => {
      const started = Date.now();
      const outcome = await replayRecording({
        recording: args.recording!,
        strategies: args.strategy,
        resultsRoot: args.results ?? resultsDir(),
        argv: process.argv.slice(2),
        onProgress: (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
        writers: [new ConsoleTableWriter((text) => process.stdout.write(text))],
      });
      for (const warning of outcome.warnings) process.stderr.write(`warning: ${warning}\n`);
      process.stdout.write(
        `\n${outcome.status} in ${((Date.now() - started) / 1000).toFixed(0)} s — results in ${outcome.dir}\n  samples.csv, summary.csv, run.json\n`,
      );
      if (outcome.status !== 'completed') throw new XmeError(`replay ${outcome.status}`, `partial results are in ${outcome.dir}`);
    },
  );
}
