/**
 * The QEMU command line of one guest, as a pure function so that it can be tested and recorded.
 * Guest RAM is a shared file mapping: the harness maps the same file and reads guest-physical pages without
 * copies (on the pc machine, below 3 GiB, file offset = guest-physical address).
 */
import type { AcceleratorChoice } from './accelerator.ts';
import type { WorkloadSpec } from '../types.ts';

export interface GuestLaunch {
  memoryMiB: number;
  memoryFile: string;
  qmpSocket: string;
  serialLog: string;
  kernel: string;
  initramfs: string;
  accelerator: AcceleratorChoice;
  kaslr: boolean;
  workload: WorkloadSpec;
}

/** The workload on the kernel command line: xme.workload=memchurn xme.args=mib=32,rate=500 */
export function workloadCommandLine(workload: WorkloadSpec): string[] {
  const words = [`xme.workload=${workload.name}`];
  const params = Object.entries(workload.params ?? {}).filter(([, value]) => value !== undefined);
  for (const [key, value] of params) {
    if (!Number.isInteger(value) || (value as number) < 0) throw new Error(`workload parameter ${key} must be a non-negative integer`);
  }
  if (params.length) words.push(`xme.args=${params.map(([key, value]) => `${key}=${value}`).join(',')}`);
  return words;
}

/** The guest kernel's command line: console device (ttyS0 under QEMU, hvc0 under Xen), KASLR, workload. */
export function kernelCommandLine(launch: Pick<GuestLaunch, 'kaslr' | 'workload'>, console = 'ttyS0'): string {
  return [
    `console=${console}`,
    // panic=-1 + -no-reboot: a crashed guest kernel ends its QEMU, which the backend notices.
    'panic=-1',
    'quiet',
    launch.kaslr ? 'kaslr' : 'nokaslr',
    ...workloadCommandLine(launch.workload),
  ].join(' ');
}

export function qemuArguments(launch: GuestLaunch): string[] {
  const size = `${launch.memoryMiB}M`;
  const accel = launch.accelerator.accelerator === 'kvm' ? 'kvm' : 'tcg';
  return [
    '-name', 'xme-guest',
    '-accel', accel,
    '-cpu', launch.accelerator.cpuModel,
    '-smp', '1',
    '-m', size,
    '-object', `memory-backend-file,id=xme-ram,size=${size},mem-path=${launch.memoryFile},share=on`,
    '-machine', 'pc,memory-backend=xme-ram',
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-no-reboot',
    '-serial', `file:${launch.serialLog}`,
    '-qmp', `unix:${launch.qmpSocket},server=on,wait=off`,
    '-kernel', launch.kernel,
    '-initrd', launch.initramfs,
    '-append', kernelCommandLine(launch),
  ];
}
