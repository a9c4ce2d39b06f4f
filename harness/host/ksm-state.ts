/**
 * The host's KSM state file: /run/xme/ksm-state.json (a tmpfs that a reboot clears, as it resets KSM;
 * XME_KSM_STATE_DIR overrides the directory). It is both the lock — only one xme process changes KSM at a
 * time — and the record of the host's values before the owner changed anything, so that whoever finds it
 * after the owner died (SIGKILL, crash) can put them back: the owner's guard process at once (ksm-guard.ts),
 * else the next run (ksm-recover.ts).
 *
 * The file is never seen half-written: it is written whole to a private temporary file and fsynced, then
 * linked to its name (link() fails if the name exists: an exclusive create, like O_EXCL) or renamed over it
 * by its owner. The owner writes the saved values before it changes any knob.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ownerGone, ownerIdentity, type ProcessIdentity } from '../util/process-identity.ts';
import { XmeError, errorMessage } from '../util/errors.ts';
import type { KsmSettings } from './ksm-settings.ts';

export const KSM_STATE_DIR = '/run/xme';
const STATE_FILE_NAME = 'ksm-state.json';
const CLAIM_INFIX = '.recovering-';

export interface KsmStateRecord {
  version: 1;
  /** The xme process that changed KSM: pid, its start time (clock ticks since boot), boot id. */
  owner: ProcessIdentity;
  createdAt: string;
  settings?: KsmSettings;
  /** The host's values before the owner changed anything, by knob; null while the owner is still reading them (nothing changed yet). */
  saved: Record<string, string> | null;
  /** Knobs recorded but never changed (max_page_sharing, merge_across_nodes). */
  unchanged?: Record<string, string>;
  /** The guard process that restores the saved values if the owner dies without doing so (ksm-guard.ts), once it watches. */
  guard?: { pid: number };
}

export function ksmStateDir(): string {
  return process.env.XME_KSM_STATE_DIR || KSM_STATE_DIR;
}

export function ksmStateFile(): string {
  return path.join(ksmStateDir(), STATE_FILE_NAME);
}

export function newStateRecord(fields: Pick<KsmStateRecord, 'saved'> & Partial<KsmStateRecord>): KsmStateRecord {
  return { version: 1, owner: ownerIdentity(), createdAt: new Date().toISOString(), ...fields };
}

export function ensureStateDir(): void {
  const dir = ksmStateDir();
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (error) {
    throw new XmeError(
      `KSM: cannot use ${dir} for the host's KSM state: ${errorMessage(error)}`,
      'run xme as root (sudo), or set XME_KSM_STATE_DIR to a writable directory that a reboot clears',
    );
  }
}

function writeDurably(file: string, text: string): void {
  const fd = fs.openSync(file, 'wx', 0o644);
  try {
    fs.writeSync(fd, text);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a directory; the file itself was fsynced
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

function tempName(file: string): string {
  return `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
}

/** Create the state file unless it exists: true if this call created it (this process now holds KSM). */
export function createStateFile(record: KsmStateRecord): boolean {
  const file = ksmStateFile();
  const temp = tempName(file);
  writeDurably(temp, `${JSON.stringify(record, null, 2)}\n`);
  try {
    fs.linkSync(temp, file);
    fsyncDir(path.dirname(file));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    fs.rmSync(temp, { force: true });
  }
}

/** Replace the state file's content at once (only its owner does this). */
export function replaceStateFile(record: KsmStateRecord): void {
  const file = ksmStateFile();
  const temp = tempName(file);
  writeDurably(temp, `${JSON.stringify(record, null, 2)}\n`);
  try {
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  fsyncDir(path.dirname(file));
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.values(value).every((v) => typeof v === 'string');
}

/** The record in `file`, undefined if there is none; an unreadable record is an XmeError (its values cannot be trusted). */
export function readStateFile(file = ksmStateFile()): KsmStateRecord | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const unreadable = (why: string): never => {
    throw new XmeError(
      `KSM: the state file ${file} is unreadable (${why}); the host's KSM settings it saved cannot be restored automatically`,
      `check /sys/kernel/mm/ksm by hand (run, pages_to_scan, sleep_millisecs, use_zero_pages, smart_scan, advisor_mode), then delete ${file}`,
    );
  };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return unreadable(errorMessage(error));
  }
  const record = value as Partial<KsmStateRecord> | null;
  if (typeof record !== 'object' || record === null) return unreadable('not an object');
  const pid = record.owner?.pid;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) return unreadable(`owner.pid ${JSON.stringify(pid)} is not a PID`);
  if (record.saved !== null && !isStringRecord(record.saved)) return unreadable('saved is not a map of knob values');
  return { version: 1, createdAt: String(record.createdAt ?? ''), ...record, owner: record.owner!, saved: record.saved } as KsmStateRecord;
}

/** 'alive': another process holds KSM; 'self': this process (same PID and start time); else why the owner is gone. */
export function ownerStatus(owner: ProcessIdentity): 'alive' | 'self' | { gone: string } {
  // The file is host-local (/run), so the host name it records does not matter: a renamed host is still this one.
  const gone = ownerGone({ ...owner, hostname: os.hostname() });
  if (gone !== undefined) return { gone };
  return owner.pid === process.pid ? 'self' : 'alive';
}

function sameOwner(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.pidStartTicks === b.pidStartTicks && a.bootId === b.bootId;
}

/**
 * Take the state file of a dead owner for recovery: renamed to a name of our own, so that of two processes
 * that both found it only one restores it. Returns the claimed file and its record, or undefined if
 * another process took it first (or it now belongs to someone else: then it is put back).
 */
export function claimStateFile(expected: KsmStateRecord): { file: string; record: KsmStateRecord } | undefined {
  const file = ksmStateFile();
  const claimed = `${file}${CLAIM_INFIX}${process.pid}`;
  try {
    fs.renameSync(file, claimed);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const record = readStateFile(claimed);
  if (record && sameOwner(record.owner, expected.owner)) return { file: claimed, record };
  // Between our read and the rename the file was recovered and created anew by a live process: put it back.
  try {
    fs.linkSync(claimed, file);
  } catch {
    // a third process created one meanwhile; the one we hold is then recovered later, when its owner is gone
  }
  fs.rmSync(claimed, { force: true });
  return undefined;
}

/** Put a claimed file back under its name (its restore failed: the next attempt retries it). */
export function unclaimStateFile(claimed: string): void {
  try {
    fs.linkSync(claimed, ksmStateFile());
    fs.rmSync(claimed, { force: true });
  } catch {
    // a live owner exists now: the claimed file stays, and is found by the next recovery
  }
}

/** Claimed files of recoverers that died before finishing (name ends with their PID). */
export function abandonedClaims(): string[] {
  const dir = ksmStateDir();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const prefix = `${STATE_FILE_NAME}${CLAIM_INFIX}`;
  return names
    .filter((name) => name.startsWith(prefix))
    .filter((name) => {
      const pid = Number(name.slice(prefix.length));
      return pid !== process.pid && ownerGone({ pid, hostname: os.hostname() }) !== undefined;
    })
    .map((name) => path.join(dir, name));
}

/** Remove the state file if it is still the one `owner` wrote. */
export function removeStateFileOf(owner: ProcessIdentity): void {
  const file = ksmStateFile();
  let record: KsmStateRecord | undefined;
  try {
    record = readStateFile(file);
  } catch {
    return; // not ours to judge
  }
  if (record && sameOwner(record.owner, owner)) {
    fs.rmSync(file, { force: true });
    fsyncDir(path.dirname(file));
  }
}
