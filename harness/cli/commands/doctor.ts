import type { Argv } from 'yargs';
import { runDoctor } from '../../doctor.ts';

const marks = { ok: 'ok  ', warn: 'warn', missing: 'MISS' } as const;

export function registerDoctorCommand(cli: Argv): Argv {
  return cli.command(
    'doctor',
    'check what this machine offers each backend (QEMU, accelerator, KSM, Xen, libraries, images)',
    (y) => y.option('json', { type: 'boolean', default: false, describe: 'print the report as JSON' }),
    async (args) => {
      const report = await runDoctor();
      if (args.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return;
      }
      const width = Math.max(...report.checks.map((c) => c.name.length));
      for (const check of report.checks) process.stdout.write(`  [${marks[check.status]}] ${check.name.padEnd(width)}  ${check.detail}\n`);
      process.stdout.write('\nverdict:\n');
      for (const verdict of report.verdicts) {
        process.stdout.write(`  ${verdict.backend.padEnd(5)} ${verdict.ready ? 'READY    ' : 'NOT READY'}  ${verdict.detail}\n`);
      }
    },
  );
}
