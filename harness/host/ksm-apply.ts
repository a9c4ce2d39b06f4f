/**
 * Writing KSM settings and writing saved values back, in the order the kernel needs:
 * - advisor_mode before pages_to_scan: changing advisor_mode resets pages_to_scan (to 100 for "none", to
 *   advisor_min_pages_to_scan for "scan-time"), and with "scan-time" the kernel refuses writes to
 *   pages_to_scan (EINVAL), so pages_to_scan is then neither set nor restored: the advisor owns it.
 * - run last: ksmd starts (or resumes the host's own setting) only once every other knob has its value.
 *   Restoring first stops ksmd (run=0), so that it never scans with half-restored settings, and stops
 *   merging the host's other processes at the first write when the host had KSM off (the usual case).
 * Restoring run=0 stops ksmd but leaves merged pages merged, as the kernel's "0" means: they stay until written.
 */
import { errorMessage, XmeError } from '../util/errors.ts';
import { CHANGED_KNOBS, knobExists, OPTIONAL_KNOBS, readKnob, writeKnob, type ChangedKnob } from './ksm-knobs.ts';
import { settingsAsKnobs, type KsmSettings } from './ksm-settings.ts';

/** What each optional knob's absence means: an older kernel behaves as if it were set to this. */
const VALUE_WITHOUT_KNOB: Readonly<Partial<Record<ChangedKnob, string>>> = { use_zero_pages: '0', smart_scan: '0', advisor_mode: 'none' };

const OPTION_OF_KNOB: Readonly<Partial<Record<ChangedKnob, string>>> = {
  use_zero_pages: 'use_zero_pages: false',
  smart_scan: 'smart_scan: false',
  advisor_mode: 'advisor_mode: "none"',
};

/** Refuse settings this kernel cannot apply (a knob it lacks set to anything but what its absence means). Changes nothing. */
export function checkSettingsSupported(settings: KsmSettings): void {
  const wanted = settingsAsKnobs(settings);
  for (const [knob, version] of Object.entries(OPTIONAL_KNOBS) as [ChangedKnob, string][]) {
    if (knobExists(knob) || wanted[knob] === VALUE_WITHOUT_KNOB[knob]) continue;
    throw new XmeError(
      `KSM: ${knob}=${wanted[knob]} needs Linux ${version} or later; this kernel has no ${knob} knob`,
      `set ${OPTION_OF_KNOB[knob]} in the scenario, or use a newer kernel`,
    );
  }
}

/** The writes that apply `settings` and start ksmd, in order. */
export function plannedWrites(settings: KsmSettings): [string, string][] {
  const wanted = settingsAsKnobs(settings);
  const writes: [string, string][] = [];
  if (knobExists('advisor_mode') && readKnob('advisor_mode') !== wanted.advisor_mode) writes.push(['advisor_mode', wanted.advisor_mode!]);
  if (settings.advisorMode === 'none') writes.push(['pages_to_scan', wanted.pages_to_scan!]);
  writes.push(['sleep_millisecs', wanted.sleep_millisecs!]);
  for (const knob of ['use_zero_pages', 'smart_scan'] as const) if (knobExists(knob)) writes.push([knob, wanted[knob]!]);
  writes.push(['run', '1']);
  return writes;
}

/** Apply `settings` and start ksmd; throws on the first refusal, or if a knob does not read back as written. */
export function applySettings(settings: KsmSettings): void {
  const writes = plannedWrites(settings);
  for (const [knob, value] of writes) writeKnob(knob, value);
  const wrong = writes.filter(([knob, value]) => readKnob(knob) !== value).map(([knob, value]) => `${knob} reads ${readKnob(knob)}, not ${value}`);
  if (wrong.length > 0)
    throw new XmeError(`KSM: settings did not take: ${wrong.join('; ')}`, 'another program may be changing /sys/kernel/mm/ksm at the same time');
}

/** With the advisor on in the saved values, pages_to_scan is the advisor's: neither written back nor compared. */
export function advisorOwnsPagesToScan(saved: Readonly<Record<string, string>>): boolean {
  return (saved.advisor_mode ?? 'none') !== 'none';
}

/** The saved knobs that restoreKnobs writes back (all but an advisor-owned pages_to_scan). */
export function knobsToRestore(saved: Readonly<Record<string, string>>): string[] {
  return Object.keys(saved).filter((knob) => !(knob === 'pages_to_scan' && advisorOwnsPagesToScan(saved)));
}

/**
 * Write saved values back (see the order above). Never stops half-way: every knob is tried, and the
 * problems are returned (empty: every restored knob reads back as saved).
 */
export function restoreKnobs(saved: Readonly<Record<string, string>>): string[] {
  const problems: string[] = [];
  const attempt = (knob: string, value: string): void => {
    try {
      writeKnob(knob, value);
    } catch (error) {
      problems.push(errorMessage(error));
    }
  };
  const current = (knob: string): string | undefined => {
    try {
      return readKnob(knob);
    } catch {
      return undefined;
    }
  };
  if (saved.run !== undefined && current('run') !== '0') attempt('run', '0');
  if (saved.advisor_mode !== undefined && current('advisor_mode') !== saved.advisor_mode) attempt('advisor_mode', saved.advisor_mode);
  const restored: string[] = [];
  for (const knob of CHANGED_KNOBS) {
    const value = saved[knob];
    if (value === undefined || knob === 'run' || knob === 'advisor_mode') continue;
    if (knob === 'pages_to_scan' && advisorOwnsPagesToScan(saved)) continue;
    attempt(knob, value);
    restored.push(knob);
  }
  if (saved.run !== undefined) attempt('run', saved.run);
  for (const knob of [...restored, 'advisor_mode', 'run']) {
    const value = saved[knob];
    if (value === undefined) continue;
    const now = current(knob);
    if (now !== value) problems.push(`${knob} reads ${now ?? '(unreadable)'} after restoring, not ${value}`);
  }
  return problems;
}

/** "run=0, pages_to_scan=100, …" */
export function describeKnobs(values: Readonly<Record<string, string>>): string {
  return Object.entries(values)
    .map(([knob, value]) => `${knob}=${value}`)
    .join(', ');
}
