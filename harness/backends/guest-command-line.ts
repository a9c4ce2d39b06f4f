/**
 * What every backend tells a guest kernel, whatever the hypervisor: console, KASLR, and the workload that the
 * guest's /init starts (guest-images/init/init.sh reads xme.workload and xme.args). A system image's kernel
 * gets the image's own command line (root disk, console) with the same KASLR and robustness options; its
 * workload is started through the guest agent, not by the command line.
 */
import type { WorkloadSpec } from '../vocabulary.ts';

/**
 * Each guest's workload gets its own random seed (1, 2, …) unless the scenario fixes one: identical guests run
 * one kernel and one program, but the data they write is their own, as for independent users. With one seed
 * for all, guests would write identical pages that content-based sharing would merge — an artefact.
 */
export function perGuestWorkload(workload: WorkloadSpec, index: number): WorkloadSpec {
  return { ...workload, params: { ...workload.params, seed: workload.params?.seed ?? index + 1 } };
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

/** The options every guest kernel gets, kernel image or system image: panic ends the guest, timer check, KASLR. */
function commonOptions(kaslr: boolean): string[] {
  return [
    // panic=-1: a crashed guest kernel reboots at once, which ends QEMU (-no-reboot) or the domain (on_reboot).
    'panic=-1',
    'quiet',
    // no_timer_check: under TCG on a loaded host the IO-APIC timer check at boot can miss its ticks and panic
    // ("IO-APIC + timer doesn't work!", seen 2026-11-27 at load ≈ 5); a virtual machine's timer needs no check.
    'no_timer_check',
    // Debian's kernels have KASLR on by default; say it either way, so that the command line shows the choice.
    kaslr ? 'kaslr' : 'nokaslr',
  ];
}

/** A system image's kernel command line: the image's own (root=/dev/vda rw console=ttyS0), then the common options. */
export function systemKernelCommandLine(imageCommandLine: string, launch: { kaslr: boolean }): string {
  return [imageCommandLine, ...commonOptions(launch.kaslr)].join(' ');
}

/** The guest kernel's command line: console device (ttyS0 under QEMU, hvc0 under Xen), KASLR, workload. */
export function kernelCommandLine(launch: { kaslr: boolean; workload: WorkloadSpec }, console = 'ttyS0'): string {
  return [`console=${console}`, ...commonOptions(launch.kaslr), ...workloadCommandLine(launch.workload)].join(' ');
}
