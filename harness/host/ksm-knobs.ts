/**
 * The KSM knobs in sysfs (/sys/kernel/mm/ksm): where they are, reading and writing one, and whether this
 * process may change them at all. XME_KSM_SYSFS points at another directory instead — unit tests use a folder
 * of plain files there, which checks the save/restore logic but not the kernel.
 */
import fs from 'node:fs';
import path from 'node:path';
import { XmeError, errorMessage } from '../util/errors.ts';

export const KSM_SYSFS_DIR = '/sys/kernel/mm/ksm';

export function ksmSysfsDir(): string {
  return process.env.XME_KSM_SYSFS || KSM_SYSFS_DIR;
}

/** Knobs a session sets and restores. */
export const CHANGED_KNOBS = ['run', 'advisor_mode', 'pages_to_scan', 'sleep_millisecs', 'use_zero_pages', 'smart_scan'] as const;
export type ChangedKnob = (typeof CHANGED_KNOBS)[number];

/**
 * Knobs only recorded, never written: the kernel refuses to change them while any page is merged (EBUSY),
 * and changing them would mean unmerging every KSM page on the host first.
 */
export const RECORDED_KNOBS = ['max_page_sharing', 'merge_across_nodes'] as const;

/** Knobs newer than KSM itself: absent on older kernels (Linux version that added each). */
export const OPTIONAL_KNOBS: Readonly<Partial<Record<ChangedKnob, string>>> = {
  use_zero_pages: '4.11',
  smart_scan: '6.7',
  advisor_mode: '6.8',
};

export function knobPath(name: string): string {
  return path.join(ksmSysfsDir(), name);
}

export function knobExists(name: string): boolean {
  return fs.existsSync(knobPath(name));
}

/**
 * A knob's value as it would be written back: trimmed, and for a choice such as advisor_mode
 * ("[none] scan-time") the selected word ("none").
 */
export function parseKnobText(text: string): string {
  const trimmed = text.trim();
  const selected = /\[([^\]]+)\]/.exec(trimmed);
  return selected ? selected[1]! : trimmed;
}

export function readKnob(name: string): string {
  return parseKnobText(fs.readFileSync(knobPath(name), 'utf8'));
}

/** The present knobs among `names`, by name (absent ones are left out). */
export function readKnobs(names: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) if (knobExists(name)) values[name] = readKnob(name);
  return values;
}

/** Write one knob; a refusal becomes an XmeError naming the knob, the value and the kernel's reason. */
export function writeKnob(name: string, value: string): void {
  const file = knobPath(name);
  // A missing knob is an error, not a new file (which writeFileSync would create in a fake directory).
  if (!fs.existsSync(file)) throw new XmeError(`KSM: cannot set ${name}=${value}: ${file} does not exist`, 'this kernel lacks the knob');
  try {
    fs.writeFileSync(file, value);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'EINVAL'
        ? 'the kernel refused the value (EINVAL)'
        : code === 'EBUSY'
          ? 'the kernel refused it while pages are merged (EBUSY)'
          : errorMessage(error);
    throw new XmeError(
      `KSM: cannot set ${name}=${value}: ${why}`,
      code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? notWritableFix(code) : undefined,
    );
  }
}

function notWritableFix(code: string | undefined): string {
  return code === 'EROFS'
    ? 'sysfs is mounted read-only here (a container?): run on the host, or in a privileged container with a writable /sys'
    : 'run xme as root (sudo)';
}

/** Whether this process can use KSM: the kernel has it and its knobs are writable. */
export function ksmAvailable(): { ok: true } | { ok: false; why: string; fix: string } {
  const dir = ksmSysfsDir();
  const run = path.join(dir, 'run');
  if (!fs.existsSync(run)) {
    return {
      ok: false,
      why: `this kernel has no KSM (${dir} is missing)`,
      fix: 'use a kernel built with CONFIG_KSM=y (distribution kernels are; check: grep CONFIG_KSM /boot/config-$(uname -r))',
    };
  }
  try {
    fs.accessSync(run, fs.constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EROFS') return { ok: false, why: `${dir} is on a read-only sysfs`, fix: notWritableFix(code) };
    const uid = process.getuid?.();
    return { ok: false, why: `${run} is not writable${uid === undefined ? '' : ` by uid ${uid}`}`, fix: notWritableFix(code) };
  }
  return { ok: true };
}
