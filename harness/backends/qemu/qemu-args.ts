/**
 * The QEMU command line of one guest, as a pure function so that it can be tested and recorded.
 * Guest RAM (guest-ram.ts) is either a shared file mapping — the harness maps the same file and reads
 * guest-physical pages without copies (on the pc machine, below 3 GiB, file offset = guest-physical address) —
 * or anonymous memory of QEMU marked mergeable for Linux KSM (memory-backend-ram, merge=on). A kernel image boots
 * its initramfs; a system image boots its disk (an overlay per guest), with the guest agent (SystemLaunch).
 */
import type { AcceleratorChoice } from './accelerator.ts';
import type { GuestRamKind } from '../types.ts';
import type { WorkloadSpec } from '../../vocabulary.ts';
import { kernelCommandLine, systemKernelCommandLine } from '../guest-command-line.ts';
import { WORKLOAD_PORT } from '../../workloads/app-workloads.ts';

interface CommonLaunch {
  memoryMiB: number;
  ram: GuestRamKind;
  /** The RAM file (shared-file only). */
  memoryFile: string;
  qmpSocket: string;
  serialLog: string;
  kernel: string;
  accelerator: AcceleratorChoice;
  /** This guest's CPU model when it is not the accelerator's (ProvisionOptions.cpuModels). */
  cpuModel?: string;
  kaslr: boolean;
}

/** A kernel image: the busybox initramfs is the whole system; its /init runs the workload of the command line. */
export interface InitramfsLaunch extends CommonLaunch {
  boot?: 'initramfs';
  initramfs: string;
  workload: WorkloadSpec;
}

/**
 * A system image: the image's initrd mounts the guest's own copy-on-write overlay of the base disk (virtio-blk)
 * as /; no network device (loopback only inside the guest); the guest agent on a virtio-serial port, and a
 * second port whose output QEMU writes to a file (the application workload's output, app-workloads.ts).
 */
export interface SystemLaunch extends CommonLaunch {
  boot: 'system';
  initrd: string;
  /** The guest's qcow2 overlay (its backing file is the image's read-only base disk). */
  disk: string;
  /** The image's own kernel command line (root disk, console). */
  imageCommandLine: string;
  agentSocket: string;
  /** Where QEMU writes what the guest sends to the workload port. */
  workloadLog: string;
}

export type GuestLaunch = InitramfsLaunch | SystemLaunch;

export const AGENT_PORT = 'org.qemu.guest_agent.0';

function bootArguments(launch: GuestLaunch): string[] {
  if (launch.boot !== 'system') {
    return ['-kernel', launch.kernel, '-initrd', launch.initramfs, '-append', kernelCommandLine(launch)];
  }
  return [
    '-kernel',
    launch.kernel,
    '-initrd',
    launch.initrd,
    '-append',
    systemKernelCommandLine(launch.imageCommandLine, launch),
    // cache=unsafe: the overlay is the guest's scratch copy, dropped at teardown; nothing needs to reach the disk.
    '-drive',
    `file=${launch.disk},format=qcow2,if=virtio,cache=unsafe`,
    '-nic',
    'none',
    '-device',
    'virtio-serial',
    '-chardev',
    `socket,path=${launch.agentSocket},server=on,wait=off,id=qga0`,
    '-device',
    `virtserialport,chardev=qga0,name=${AGENT_PORT}`,
    '-chardev',
    `file,path=${launch.workloadLog},id=xmewl0`,
    '-device',
    `virtserialport,chardev=xmewl0,name=${WORKLOAD_PORT}`,
  ];
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
    ...bootArguments(launch),
  ];
}
