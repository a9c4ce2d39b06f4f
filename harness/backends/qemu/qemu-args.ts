/**
 * The QEMU command line of one guest, as a pure function so that it can be tested and recorded.
 * Guest RAM (guest-ram.ts) is either a shared file mapping — the harness maps the same file and reads
 * guest-physical pages without copies (on the pc machine, below 3 GiB, file offset = guest-physical address) —
 * or anonymous memory of QEMU marked mergeable for Linux KSM (memory-backend-ram, merge=on).
 */
import type { AcceleratorChoice } from './accelerator.ts';
import type { GuestRamKind } from '../types.ts';
import type { WorkloadSpec } from '../../vocabulary.ts';
import { kernelCommandLine } from '../guest-command-line.ts';

export interface GuestLaunch {
  memoryMiB: number;
  ram: GuestRamKind;
  /** The RAM file (shared-file only). */
  memoryFile: string;
  qmpSocket: string;
  serialLog: string;
  kernel: string;
  initramfs: string;
  accelerator: AcceleratorChoice;
  /** This guest's CPU model when it is not the accelerator's (ProvisionOptions.cpuModels). */
  cpuModel?: string;
  kaslr: boolean;
  workload: WorkloadSpec;
}

export function qemuArguments(launch: GuestLaunch): string[] {
  const size = `${launch.memoryMiB}M`;
  const accel = launch.accelerator.accelerator === 'kvm' ? 'kvm' : 'tcg';
  return [
    '-name',
    'xme-guest',
    '-accel',
    accel,
    '-cpu',
    launch.cpuModel ?? launch.accelerator.cpuModel,
    '-smp',
    '1',
    '-m',
    size,
    '-object',
    launch.ram === 'anonymous-mergeable'
      ? `memory-backend-ram,id=xme-ram,size=${size},merge=on`
      : `memory-backend-file,id=xme-ram,size=${size},mem-path=${launch.memoryFile},share=on,merge=off`,
    '-machine',
    'pc,memory-backend=xme-ram',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-no-reboot',
    '-serial',
    `file:${launch.serialLog}`,
    '-qmp',
    `unix:${launch.qmpSocket},server=on,wait=off`,
    '-kernel',
    launch.kernel,
    '-initrd',
    launch.initramfs,
    '-append',
    kernelCommandLine(launch),
  ];
}
