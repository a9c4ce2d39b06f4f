/**
 * Which accelerator really works here. /dev/kvm can exist and still be useless: on this project's machines it
 * is kvm_pvm (software; no vmx/svm in the CPU flags), where `-cpu host` aborts and other models run slower
 * than TCG. So KVM is used only when the CPU shows hardware virtualisation AND a short QEMU probe with
 * `-accel kvm -cpu host` keeps running; otherwise TCG. The choice and its reason go into every run's record.
 */
import fs from 'node:fs';
import { execa } from 'execa';

export type AcceleratorName = 'tcg' | 'kvm';
export type AcceleratorRequest = AcceleratorName | 'auto';

export interface AcceleratorChoice {
  accelerator: AcceleratorName;
  /** One CPU model for every guest of a run: boot-time patching makes kernel code depend on it. */
  cpuModel: string;
  reason: string;
}

export const TCG_CPU_MODEL = 'qemu64';

function hardwareVirtualisationFlag(): string | undefined {
  try {
    const flags = /^flags\s*:(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.split(/\s+/) ?? [];
    return flags.find((flag) => flag === 'vmx' || flag === 'svm');
  } catch {
    return undefined;
  }
}

/** Why KVM cannot be used, or undefined if a real probe says it runs. */
export async function kvmUnusableReason(qemuBinary: string, probeMs = 3000): Promise<string | undefined> {
  if (!fs.existsSync('/dev/kvm')) return '/dev/kvm does not exist';
  try {
    fs.accessSync('/dev/kvm', fs.constants.R_OK | fs.constants.W_OK);
  } catch {
    return 'no read/write permission on /dev/kvm';
  }
  if (!hardwareVirtualisationFlag()) {
    return '/dev/kvm exists but the CPU shows no vmx/svm flag (a software KVM such as kvm_pvm: slower than TCG)';
  }
  // A machine with no kernel sits in the firmware forever: if QEMU is still running after probeMs, KVM works.
  const probe = execa(qemuBinary, ['-accel', 'kvm', '-cpu', 'host', '-machine', 'pc', '-m', '64', '-nodefaults', '-no-user-config', '-display', 'none'], {
    reject: false,
    timeout: probeMs,
    stdin: 'ignore',
  });
  const result = await probe;
  if (result.timedOut) return undefined;
  return `qemu -accel kvm -cpu host exited at once: ${result.stderr.trim().split('\n')[0] ?? `status ${result.exitCode}`}`;
}

let cached: Promise<AcceleratorChoice> | undefined;

/** Decide once per process. */
export function chooseAccelerator(qemuBinary: string, request: AcceleratorRequest): Promise<AcceleratorChoice> {
  if (request === 'tcg') {
    return Promise.resolve({ accelerator: 'tcg', cpuModel: TCG_CPU_MODEL, reason: 'requested (--accel tcg)' });
  }
  cached ??= kvmUnusableReason(qemuBinary).then(
    (unusable): AcceleratorChoice =>
      unusable
        ? { accelerator: 'tcg', cpuModel: TCG_CPU_MODEL, reason: `KVM not used: ${unusable}` }
        : { accelerator: 'kvm', cpuModel: 'host', reason: 'KVM probe ran with -cpu host' },
  );
  return cached.then((choice) => {
    if (request === 'kvm' && choice.accelerator !== 'kvm') {
      throw new Error(`--accel kvm was requested but ${choice.reason}`);
    }
    return choice;
  });
}
