/**
 * The KSM settings a run asks for: their defaults, their validation from a scenario's options, and the knob
 * values they stand for.
 */
import { XmeError } from '../util/errors.ts';

export interface KsmSettings {
  /** Pages ksmd scans per batch (knob pages_to_scan). Not written with advisorMode 'scan-time': the advisor sets it. */
  pagesToScan: number;
  /** Pause between batches, ms (sleep_millisecs). */
  sleepMillisecs: number;
  /** Merge zero-filled pages with the kernel's zero page instead of with each other (use_zero_pages). */
  useZeroPages: boolean;
  /** Skip pages that did not merge in recent scans (smart_scan, Linux 6.7+). */
  smartScan: boolean;
  /** 'scan-time': the kernel tunes pages_to_scan itself towards a target full-scan time (advisor_mode, Linux 6.8+). */
  advisorMode: 'none' | 'scan-time';
}

/**
 * Why these defaults:
 * - pagesToScan 5000 every sleepMillisecs 20 (≤ 250,000 pages/s): the kernel's default of 100 pages per 20 ms
 *   needs ~100 s for one pass over two 256 MiB guests, longer than most runs, so KSM would be measured before
 *   it has merged anything. At 5000 a full scan of two such guests took ~0.18 s and ~0.6 CPU-s per 1 M pages
 *   (FACTS.md, measured 2026-11-27): converged within seconds, at a ksmd CPU cost that is reported
 *   (ksmdCpuNs) rather than hidden. 20 ms is the kernel's own default pause.
 * - useZeroPages true: zero-filled pages (most of an idle guest) map to the kernel's zero page instead of
 *   piling up in the stable tree in chains of max_page_sharing (256) mappings each; frames saved are then
 *   pages_sharing + ksm_zero_pages, comparable with the other strategies, which count zero pages as shared too.
 * - smartScan true: the kernel's own default since 6.7 (skips pages that keep failing to merge: less CPU).
 * - advisorMode 'none': a fixed scan rate, so that runs and repetitions are comparable; the advisor changes
 *   pages_to_scan over time towards a full scan every 200 s — far slower than a run.
 */
export const KSM_DEFAULT_SETTINGS: KsmSettings = Object.freeze({
  pagesToScan: 5000,
  sleepMillisecs: 20,
  useZeroPages: true,
  smartScan: true,
  advisorMode: 'none',
});

/** Scenario option names, as the knobs are named. */
export const KSM_OPTION_NAMES = ['pages_to_scan', 'sleep_millisecs', 'use_zero_pages', 'smart_scan', 'advisor_mode'] as const;

/** Both counts are unsigned int in the kernel. */
const UINT_MAX = 4_294_967_295;
const HINT = 'see scenarios/README.md for the format';

/**
 * KSM settings from a scenario's options ({pages_to_scan, sleep_millisecs, use_zero_pages, smart_scan,
 * advisor_mode}); absent ones take KSM_DEFAULT_SETTINGS. `field(name)` names an option in error messages
 * (e.g. `strategies[2].options.pages_to_scan`).
 */
export function parseKsmSettings(raw: Record<string, unknown>, field: (name: string) => string): KsmSettings {
  const fail = (name: string, problem: string): never => {
    throw new XmeError(`${field(name)} ${problem}`, HINT);
  };
  for (const name of Object.keys(raw)) {
    if (!(KSM_OPTION_NAMES as readonly string[]).includes(name)) fail(name, `is not a KSM option (known: ${KSM_OPTION_NAMES.join(', ')})`);
  }
  const integer = (name: string, min: number, fallback: number): number => {
    const value = raw[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > UINT_MAX) {
      fail(name, `must be an integer from ${min} to ${UINT_MAX}, got ${JSON.stringify(value)}`);
    }
    return value as number;
  };
  const boolean = (name: string, fallback: boolean): boolean => {
    const value = raw[name];
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') fail(name, `must be true or false, got ${JSON.stringify(value)}`);
    return value as boolean;
  };
  const advisor = raw.advisor_mode ?? KSM_DEFAULT_SETTINGS.advisorMode;
  if (advisor !== 'none' && advisor !== 'scan-time') fail('advisor_mode', `must be "none" or "scan-time", got ${JSON.stringify(advisor)}`);
  if (advisor === 'scan-time' && raw.pages_to_scan !== undefined) {
    fail('pages_to_scan', 'cannot be set with advisor_mode "scan-time": the advisor chooses it (the kernel refuses a write)');
  }
  return {
    pagesToScan: integer('pages_to_scan', 1, KSM_DEFAULT_SETTINGS.pagesToScan),
    sleepMillisecs: integer('sleep_millisecs', 0, KSM_DEFAULT_SETTINGS.sleepMillisecs),
    useZeroPages: boolean('use_zero_pages', KSM_DEFAULT_SETTINGS.useZeroPages),
    smartScan: boolean('smart_scan', KSM_DEFAULT_SETTINGS.smartScan),
    advisorMode: advisor as KsmSettings['advisorMode'],
  };
}

/** The knob values that stand for `settings` (without run), as written to sysfs. */
export function settingsAsKnobs(settings: KsmSettings): Record<string, string> {
  return {
    advisor_mode: settings.advisorMode,
    pages_to_scan: String(settings.pagesToScan),
    sleep_millisecs: String(settings.sleepMillisecs),
    use_zero_pages: settings.useZeroPages ? '1' : '0',
    smart_scan: settings.smartScan ? '1' : '0',
  };
}
