/**
 * Linux KSM for a run: settings, counters, and a session that changes the host's KSM knobs and always puts
 * them back (release, exit, signals; after a SIGKILL its guard process does, else the next run). What lives where:
 * - ksm-settings.ts  the settings a scenario asks for, their defaults and validation
 * - ksm-knobs.ts     the sysfs knobs: read, write, availability (XME_KSM_SYSFS overrides the directory)
 * - ksm-apply.ts     applying settings and restoring saved values, in the order the kernel needs
 * - ksm-state.ts     the host-wide state file /run/xme/ksm-state.json: lock + saved values (XME_KSM_STATE_DIR)
 * - ksm-guard.ts     a process that restores them within a second if this one is killed (ksm-guard-process.ts
 *                    runs in it; ksm-guard-report.ts: what it did, for the next run's warnings)
 * - ksm-recover.ts   restoring what a dead xme process left (when its guard could not)
 * - ksm-session.ts   KsmSession: acquire → release, with the process-wide cleanup
 * - ksm-counters.ts  host-wide counters, ksmd's CPU, one process's ksm_stat
 */
export { KSM_DEFAULT_SETTINGS, parseKsmSettings, type KsmSettings } from './ksm-settings.ts';
export { ksmAvailable } from './ksm-knobs.ts';
export { readKsmCounters, readProcessKsmStat, type KsmCounters, type ProcessKsmStat } from './ksm-counters.ts';
export { KsmSession } from './ksm-session.ts';
export { recoverAbandonedKsmState } from './ksm-recover.ts';
export { takeKsmGuardReports, type KsmGuardReport } from './ksm-guard-report.ts';
