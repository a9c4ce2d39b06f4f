/**
 * Putting back the host's KSM settings saved by an xme process that died without restoring them (SIGKILL,
 * a crash, the OOM killer): its state file names a process that no longer runs.
 */
import fs from 'node:fs';
import { XmeError } from '../util/errors.ts';
import { describeKnobs, restoreKnobs } from './ksm-apply.ts';
import { abandonedClaims, claimStateFile, ownerStatus, readStateFile, unclaimStateFile, type KsmStateRecord } from './ksm-state.ts';

/** Set while a KsmSession of this process holds KSM: its state file is then not abandoned. */
let heldHere = false;

export function setHeldHere(held: boolean): void {
  heldHere = held;
}

export function isHeldHere(): boolean {
  return heldHere;
}

const defaultNotice = (message: string): void => {
  process.stderr.write(`xme: ${message}\n`);
};

/**
 * Restore a saved state left by a process that no longer runs (e.g. killed with SIGKILL); returns what was
 * restored ({} if it died before changing anything), or undefined if there was nothing to recover (no state
 * file, or its owner still runs). Says what it did through onNotice (default: stderr). Throws an XmeError if
 * the saved values cannot be written back; the state file then stays, for the next attempt or a human.
 */
export function recoverAbandonedKsmState(onNotice: (message: string) => void = defaultNotice): Record<string, string> | undefined {
  const found = readStateFile();
  let result: Record<string, string> | undefined;
  if (found) {
    const status = ownerStatus(found.owner);
    const abandoned = status !== 'alive' && !(status === 'self' && heldHere);
    if (!abandoned) return undefined; // a live owner: leave its state (and any stale claim) alone
    const claim = claimStateFile(found);
    if (claim) result = restoreClaimed(claim.file, claim.record, onNotice);
  }
  // A recoverer that died half-way left its claimed file; with no live owner, its values are still the host's.
  for (const claimed of abandonedClaims()) {
    if (readStateFile() !== undefined) break; // someone holds KSM now: its settings must not be overwritten
    const record = readStateFile(claimed);
    if (!record) continue;
    result = { ...restoreClaimed(claimed, record, onNotice), ...result };
  }
  return result;
}

function restoreClaimed(claimed: string, record: KsmStateRecord, onNotice: (message: string) => void): Record<string, string> {
  const pid = record.owner.pid;
  if (record.saved === null) {
    fs.rmSync(claimed, { force: true });
    onNotice(`removed the KSM lock of xme process ${pid}, which stopped (killed?) before changing any KSM setting`);
    return {};
  }
  const problems = restoreKnobs(record.saved);
  if (problems.length > 0) {
    unclaimStateFile(claimed);
    throw new XmeError(
      `KSM: could not restore the settings left by xme process ${pid} (killed?): ${problems.join('; ')}`,
      `set them by hand in /sys/kernel/mm/ksm (${describeKnobs(record.saved)}), then delete the state file ${claimed.replace(/\.recovering-\d+$/, '')}`,
    );
  }
  fs.rmSync(claimed, { force: true });
  onNotice(`restored KSM settings left by xme process ${pid} (killed?): ${describeKnobs(record.saved)}`);
  return { ...record.saved };
}
