/**
 * The `xme` command line (yargs). createCli() builds the parser without running it so that tests can check
 * argument handling; main.ts runs it.
 */
import yargs, { type Argv } from 'yargs';
import { UsageError } from '../util/errors.ts';
import { registerDoctorCommand } from './commands/doctor.ts';
import { registerImageCommands } from './commands/image.ts';
import { registerGuestsCommands } from './commands/guests.ts';
import { registerRunCommand } from './commands/run.ts';
import { registerCompareCommand } from './commands/compare.ts';
import { registerReportCommand } from './commands/report.ts';
import { registerSuiteCommands } from './commands/suite.ts';
import { registerMergeCommand } from './commands/merge.ts';
import { registerReplayCommand } from './commands/replay.ts';

/** Top-level commands, for pointing a usage error at the right --help. */
export const commandNames = ['run', 'replay', 'suite', 'merge', 'compare', 'report', 'doctor', 'image', 'guests'];
/** The commands whose second word is a subcommand (xme image build), not an argument (xme compare A B). */
export const commandsWithSubcommands = ['image', 'guests', 'suite'];

export function createCli(argv: string[]): Argv {
  let cli = yargs(argv)
    .scriptName('xme')
    .usage(
      'xme — compare memory page-sharing strategies (System.map semantic sharing vs content-based) across identical Linux VMs\n\n' +
        'Usage: xme <command> [options]',
    )
    .strict()
    .demandCommand(1, 'name a command (xme --help lists them)')
    .recommendCommands()
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((message, error) => {
      if (error && !(error instanceof UsageError)) throw error;
      throw new UsageError(message ?? error?.message);
    })
    .epilogue('Guest images and kernels are cached in $XME_CACHE (default ~/.cache/xme). Docs: README.md')
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100));
  cli = registerRunCommand(cli);
  cli = registerReplayCommand(cli);
  cli = registerSuiteCommands(cli);
  cli = registerMergeCommand(cli);
  cli = registerCompareCommand(cli);
  cli = registerReportCommand(cli);
  cli = registerDoctorCommand(cli);
  cli = registerImageCommands(cli);
  cli = registerGuestsCommands(cli);
  return cli;
}
