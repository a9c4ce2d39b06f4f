/** Options shared by the commands that boot guests. */
import type { Argv } from 'yargs';
import { UsageError } from '../util/errors.ts';
import { WORKLOADS, type WorkloadSpec } from '../vocabulary.ts';
import { defaultImageName } from '../images/recipes.ts';

export function guestOptions<T>(y: Argv<T>) {
  return y
    .option('count', { alias: 'n', type: 'number', default: 2, describe: 'number of identical guests' })
    .option('image', { alias: 'i', type: 'string', default: defaultImageName, describe: 'guest image (xme image list)' })
    .option('workload', { alias: 'w', choices: WORKLOADS, default: 'idle' as const, describe: 'what each guest runs' })
    .option('memory', { alias: 'm', type: 'number', default: 256, describe: 'guest RAM in MiB' })
    .option('kaslr', { type: 'boolean', default: false, describe: 'boot with KASLR on (default: nokaslr, identical layout)' })
    .option('rate', { type: 'number', describe: 'workload rate: pages (or 4 KiB blocks) per second' })
    .option('mib', { type: 'number', describe: 'workload working set in MiB' })
    .option('accel', {
      choices: ['auto', 'tcg', 'kvm'] as const,
      default: 'auto' as const,
      describe: 'accelerator (auto: KVM only if a probe shows it really runs)',
    })
    .option('boot-timeout', { type: 'number', describe: 'seconds to wait for all guests to boot (default 60 + 15 per guest)' })
    .check((args) => {
      const count = args.count as number;
      const memory = args.memory as number;
      if (!Number.isInteger(count) || count < 1 || count > 64) throw new UsageError(`--count must be an integer from 1 to 64, got ${count}`);
      if (!Number.isInteger(memory) || memory < 64 || memory > 3072) {
        throw new UsageError(`--memory must be an integer number of MiB from 64 to 3072 (guest RAM must stay below the 3 GiB PCI hole), got ${memory}`);
      }
      for (const key of ['rate', 'mib', 'boot-timeout'] as const) {
        const value = args[key] as number | undefined;
        if (value !== undefined && (!Number.isFinite(value) || value < 0)) throw new UsageError(`--${key} must be a non-negative number, got ${value}`);
      }
      return true;
    });
}

export function workloadFromArgs(args: { workload: WorkloadSpec['name']; rate?: number; mib?: number }): WorkloadSpec {
  const params: WorkloadSpec['params'] = {};
  if (args.rate !== undefined) params.rate = Math.round(args.rate);
  if (args.mib !== undefined) params.mib = Math.round(args.mib);
  return { name: args.workload, params };
}
