/**
 * What every backend tells a guest kernel, whatever the hypervisor: console, KASLR, and the workload that the
 * guest's /init starts (guest-images/init/init.sh reads xme.workload and xme.args).
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

/** The guest kernel's command line: console device (ttyS0 under QEMU, hvc0 under Xen), KASLR, workload. */
export function kernelCommandLine(launch: { kaslr: boolean; workload: WorkloadSpec }, console = 'ttyS0'): string {
  return [
    `console=${console}`,
    // panic=-1: a crashed guest kernel reboots at once, which ends QEMU (-no-reboot) or the domain (on_reboot).
    'panic=-1',
    'quiet',
    // no_timer_check: under TCG on a loaded host the IO-APIC timer check at boot can miss its ticks and panic
    // ("IO-APIC + timer doesn't work!", seen 2026-11-27 at load ≈ 5); a virtual machine's timer needs no check.
    'no_timer_check',
    launch.kaslr ? 'kaslr' : 'nokaslr',
    ...workloadCommandLine(launch.workload),
  ].join(' ');
}
