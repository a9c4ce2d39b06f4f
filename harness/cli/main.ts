/** Entry point of the `xme` command: run the CLI, print errors as one actionable line, clean up always. */
import { hideBin } from 'yargs/helpers';
import { commandNames, commandsWithSubcommands, createCli } from './cli.ts';
import { UsageError, XmeError } from '../util/errors.ts';
import { runAllCleanups } from '../util/cleanup.ts';

// `xme suite list thesis | head`: a reader that closed the pipe is not an error worth a stack trace.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  process.exit(0);
});

const argv = hideBin(process.argv);
try {
  await createCli(argv).parseAsync();
} catch (error) {
  await runAllCleanups();
  if (error instanceof UsageError) {
    const [first, second] = argv.filter((word) => !word.startsWith('-'));
    const command = first && commandNames.includes(first) ? (second && commandsWithSubcommands.includes(first) ? `${first} ${second}` : first) : '';
    process.stderr.write(`xme: ${error.message} (see: xme ${command ? `${command} ` : ''}--help)\n`);
    process.exitCode = 2;
  } else if (error instanceof XmeError) {
    process.stderr.write(`xme: error: ${error.oneLine()}\n`);
    process.exitCode = 1;
  } else {
    process.stderr.write(`xme: internal error (a bug in xme, please report it):\n${(error as Error)?.stack ?? String(error)}\n`);
    process.exitCode = 70;
  }
}
