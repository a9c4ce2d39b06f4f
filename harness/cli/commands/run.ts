import { strategyFactories } from '../../../strategies/registry.ts';
import type { Argv } from 'yargs';
import { listScenarios, loadScenario, withOverrides } from '../../scenario/scenario.ts';
import { runWithOutputs } from '../run-outputs.ts';
import { resultsDir } from '../../util/paths.ts';
import { XmeError } from '../../util/errors.ts';

import { BACKENDS } from '../../backends/registry.ts';
import { parseTickChoice } from '../../recording/recorder.ts';
import { ConsoleTableWriter } from '../console-table.ts';

export function registerRunCommand(cli: Argv): Argv {
  return cli.command(
    'run',
    'run an experiment: boot identical guests, score sharing strategies side by side, write samples.csv, summary.csv and run.json',
    (y) =>
      y
        .option('scenario', {
          alias: 's',
          type: 'string',
          demandOption: true,
          describe: `scenario name (${listScenarios().join(', ')}) or path to a .json file`,
        })
        .option('backend', { choices: BACKENDS, describe: 'override the scenario: qemu (accounted, default) or xen (enforced; in a Xen dom0)' })
        .option('strategy', {
          type: 'string',
          array: true,
          describe: `override the scenario’s strategies (names: ${strategyFactories.map((f) => f.name).join(', ')}; backend xen takes one unless the scenario has strategyGuests "apart")`,
        })
        .option('kaslr', { type: 'boolean', describe: 'override the scenario: boot with KASLR on (--kaslr) or off (--no-kaslr)' })
        .option('repetitions', { alias: 'r', type: 'number', describe: 'override the number of repetitions' })
        .option('duration', { type: 'number', describe: 'override the duration of each repetition, seconds' })
        .option('tick', { type: 'number', describe: 'override the scoring interval, seconds' })
        .option('guests', { type: 'number', array: true, describe: 'override the number of guests (several values: a sweep, e.g. --guests 2 8 32)' })
        .option('memory', { type: 'number', array: true, describe: 'override guest RAM in MiB (several values: a sweep)' })
        .option('system-map', { type: 'string', describe: 'use this System.map instead of the image’s (a wrong one must be refused)' })
        .option('accel', {
          choices: ['auto', 'tcg', 'kvm'] as const,
          default: 'auto' as const,
          describe: 'accelerator (auto: KVM only if a probe shows it really runs)',
        })
        .option('results', { type: 'string', describe: 'parent folder of results/<run-id>/ (default: results/, or $XME_RESULTS)' })
        .option('record', {
          type: 'boolean',
          default: false,
          describe: "also keep each guest's memory at the chosen ticks (sparse, compressed) in results/<run-id>/recording/, for xme replay (docs/recording.md)",
        })
        .option('record-ticks', {
          type: 'string',
          default: 'all',
          describe: 'with --record: "all", or tick numbers separated by commas (0 = the first scoring), e.g. 0,6,12',
        })
        .example('xme run --scenario thesis-kernel-code', 'kernel code shareability across 3 guests (≈1 min)')
        .example('xme run -s thesis-kernel-code --record', 'the same, recorded: then xme replay results/<run-id> --strategy hybrid')
        .example('xme run -s thesis-kernel-code --kaslr', 'the same with KASLR on')
        .example('xme run -s cow-faults', 'CoW faults over 5 minutes of a writing workload'),
    async (args) => {
      const scenario = withOverrides(loadScenario(args.scenario), {
        backend: args.backend,
        strategies: args.strategy,
        kaslr: args.kaslr,
        repetitions: args.repetitions,
        durationS: args.duration,
        tickS: args.tick,
        guests: args.guests,
        memoryMiB: args.memory,
        systemMap: args.systemMap,
      });
      const record = args.record ? { ticks: parseTickChoice(args.recordTicks) } : undefined;
      const started = Date.now();
      const outcome = await runWithOutputs({
        scenario,
        record,
        accelerator: args.accel,
        resultsRoot: args.results ?? resultsDir(),
        argv: process.argv.slice(2),
        onProgress: (line) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`),
        writers: [new ConsoleTableWriter((text) => process.stdout.write(text))],
      });
      for (const warning of outcome.warnings) process.stderr.write(`warning: ${warning}\n`);
      process.stdout.write(
        `\n${outcome.status} in ${((Date.now() - started) / 1000).toFixed(0)} s — results in ${outcome.dir}\n  samples.csv, summary.csv, run.json, logs/\n`,
      );
      if (outcome.status !== 'completed') throw new XmeError(`run ${outcome.status}`, `partial results are in ${outcome.dir}`);
    },
  );
}
