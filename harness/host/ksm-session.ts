/**
 * One run's hold on the host's KSM: save the knobs it changes, apply its settings, and restore the host's
 * values on release — and on exit, Ctrl-C, SIGTERM and SIGHUP through the process-wide cleanup
 * (harness/util/cleanup.ts). A SIGKILL cannot be caught: the session's guard process (ksm-guard.ts) then
 * restores them within a second and leaves a report for the next run (takeKsmGuardReports). Should the
 * guard be gone too, the state file (ksm-state.ts) remains, and the next run, or recoverAbandonedKsmState(),
 * restores it.
 *
 * Two runs at once are refused: KSM is host-wide, so each would change the other's settings, and the
 * counters (pages_sharing, full_scans, ksmd's CPU) would mix both runs' guests.
 */
import { onCleanup } from '../util/cleanup.ts';
import { XmeError, errorMessage } from '../util/errors.ts';
import type { ProcessIdentity } from '../util/process-identity.ts';
import { applySettings, checkSettingsSupported, describeKnobs, restoreKnobs } from './ksm-apply.ts';
import { KsmGuard } from './ksm-guard.ts';
import { CHANGED_KNOBS, ksmAvailable, readKnobs, RECORDED_KNOBS } from './ksm-knobs.ts';
import { isHeldHere, recoverAbandonedKsmState, setHeldHere } from './ksm-recover.ts';
import type { KsmSettings } from './ksm-settings.ts';
import {
  createStateFile,
  ensureStateDir,
  ksmStateFile,
  newStateRecord,
  ownerStatus,
  readStateFile,
  removeStateFileOf,
  replaceStateFile,
  type KsmStateRecord,
} from './ksm-state.ts';

/** Attempts at creating the state file: each failed one found a dead owner's file and recovered it. */
const MAX_ATTEMPTS = 5;

export class KsmSession {
  private released = false;
  private unregister: (() => void) | undefined;
  private guard: KsmGuard | undefined;

  private constructor(
    readonly settings: KsmSettings,
    /** The host's values before this run, by knob file name (the knobs release() writes back). */
    readonly saved: Readonly<Record<string, string>>,
    /** Knobs recorded but never changed (max_page_sharing, merge_across_nodes), for the run's record. */
    readonly unchanged: Readonly<Record<string, string>>,
    private readonly owner: ProcessIdentity,
  ) {}

  /**
   * Save every knob this run changes, refuse if another live process holds KSM, recover a dead owner's saved
   * state first (and say so via onNotice), start the guard process, apply settings and run=1; registers a
   * cleanup task (cleanup.ts) that restores on exit/signals. `guard: false` runs without a guard (for tests
   * of the next run's recovery).
   */
  static acquire(settings: KsmSettings, options: { onNotice?: (message: string) => void; guard?: boolean } = {}): KsmSession {
    if (isHeldHere()) throw new XmeError('KSM: this process already holds KSM', 'release the first KsmSession before acquiring another');
    const available = ksmAvailable();
    if (!available.ok) throw new XmeError(`KSM cannot be used: ${available.why}`, available.fix);
    checkSettingsSupported(settings);
    ensureStateDir();

    const lock = newStateRecord({ settings, saved: null });
    let created = false;
    for (let attempt = 0; attempt < MAX_ATTEMPTS && !created; attempt++) {
      created = createStateFile(lock);
      if (created) break;
      const holder = readStateFile();
      if (!holder) continue; // released between our two calls
      if (ownerStatus(holder.owner) === 'alive') {
        const pid = holder.owner.pid;
        throw new XmeError(
          `KSM is in use by xme process ${pid} (since ${holder.createdAt}): KSM is host-wide, two runs would change each other's settings and counters`,
          `wait for process ${pid} to finish, or stop it (kill ${pid}); its state is in ${ksmStateFile()}`,
        );
      }
      recoverAbandonedKsmState(options.onNotice);
    }
    if (!created) throw new XmeError(`KSM: could not take ${ksmStateFile()} after ${MAX_ATTEMPTS} attempts`, 'another xme process keeps taking it; try again');
    setHeldHere(true);

    let session: KsmSession | undefined;
    try {
      // Read only now, holding the lock: no other xme process changes a knob meanwhile.
      const saved = readKnobs(CHANGED_KNOBS);
      const unchanged = readKnobs(RECORDED_KNOBS);
      const record: KsmStateRecord = { ...lock, saved, unchanged };
      replaceStateFile(record); // the full record is on disk before any knob changes
      session = new KsmSession(settings, Object.freeze(saved), Object.freeze(unchanged), lock.owner);
      const self = session;
      self.unregister = onCleanup({ name: 'KSM settings', run: async () => self.release(), runSync: () => self.release() });
      // Watching before any knob changes: restores them if this process dies without doing so (SIGKILL).
      if (options.guard !== false) {
        const notice = options.onNotice ?? ((message: string) => process.stderr.write(`xme: ${message}\n`));
        self.guard = KsmGuard.start(lock.owner, { onNotice: notice, onStart: (pid) => replaceStateFile({ ...record, guard: { pid } }) });
      }
      applySettings(settings);
      return session;
    } catch (error) {
      if (session) {
        try {
          session.release();
        } catch (releaseError) {
          throw new XmeError(`${errorMessage(error)}; then restoring failed too: ${(releaseError as Error).message}`, (releaseError as XmeError).hint);
        }
      } else {
        removeStateFileOf(lock.owner);
        setHeldHere(false);
      }
      throw error;
    }
  }

  /** The guard process's PID while one watches this session (ksm-guard.ts). */
  get guardPid(): number | undefined {
    return this.guard?.pid;
  }

  /**
   * Restore every saved knob (run last), remove the state file, unregister cleanup, then stand the guard
   * down (it ends touching nothing). Idempotent.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    const problems = restoreKnobs(this.saved);
    this.unregister?.();
    this.unregister = undefined;
    setHeldHere(false);
    try {
      if (problems.length > 0) {
        // The state file stays: its owner (this process, no longer holding KSM) counts as abandoned, so the next
        // acquire — in this process too — or recoverAbandonedKsmState() tries again.
        throw new XmeError(
          `KSM: could not restore the host's settings: ${problems.join('; ')}`,
          `set them by hand in /sys/kernel/mm/ksm (${describeKnobs(this.saved)}); the next xme run retries from ${ksmStateFile()}`,
        );
      }
      removeStateFileOf(this.owner);
    } finally {
      // Only once the state file is gone (or kept for the next run): this process took care of it.
      this.guard?.standDown();
    }
  }
}
