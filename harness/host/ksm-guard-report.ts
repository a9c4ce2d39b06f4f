/**
 * What a KSM guard (ksm-guard.ts) did after its xme process died: one file per restore in the KSM state
 * directory (/run/xme/ksm-guard-report.<pid>.<ms>.json), left for the next xme run to say so in its
 * run.json warnings (takeKsmGuardReports). Written whole and renamed into place, so never seen half-written.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ProcessIdentity } from '../util/process-identity.ts';
import { describeKnobs } from './ksm-apply.ts';
import type { KsmSettings } from './ksm-settings.ts';
import { ksmStateDir } from './ksm-state.ts';
import { errorMessage } from '../util/errors.ts';

const PREFIX = 'ksm-guard-report.';
const SUFFIX = '.json';

export interface KsmGuardReport {
  version: 1;
  /** The xme process that held KSM and died without restoring it. */
  owner: ProcessIdentity;
  /** When that process took KSM (the state file's createdAt). */
  ownerSince: string;
  /** The run's KSM settings, as the state file recorded them. */
  settings?: KsmSettings;
  guardPid: number;
  /** How the guard learnt of the death: its lifeline pipe reached end-of-file, or its periodic check of the PID. */
  noticedBy: 'lifeline' | 'poll';
  /** Why the process counts as gone (ownerGone: "no such process", "a zombie", …). */
  ownerGone: string;
  /** When the guard noticed the death, and when it had finished restoring (ISO 8601, ms). */
  noticedAt: string;
  restoredAt: string;
  /** The knobs the session had saved, and what they read when the guard found them. */
  saved: Record<string, string>;
  found: Record<string, string>;
  /** The saved values of the knobs that differed and were written back ({} if all were as saved already: nothing was written). */
  restored: Record<string, string>;
  /** Knobs that do not read back as saved (empty: all restored); the state file is then left for the next run's recovery. */
  problems: string[];
  /** One sentence for the next run's warnings. */
  warning: string;
}

/** The report's sentence for run.json's warnings. */
export function guardWarning(report: Omit<KsmGuardReport, 'warning'>): string {
  const ms = Date.parse(report.restoredAt) - Date.parse(report.noticedAt);
  const who = `xme process ${report.owner.pid} (holding KSM since ${report.ownerSince}) ended without restoring the host's KSM settings (killed?)`;
  if (report.problems.length > 0) {
    return `${who}; its KSM guard (pid ${report.guardPid}) could not restore them all: ${report.problems.join('; ')} — the next xme run retries from the state file`;
  }
  if (Object.keys(report.restored).length === 0) return `${who}; its KSM guard (pid ${report.guardPid}) found them restored already and changed nothing`;
  return `${who}; its KSM guard (pid ${report.guardPid}) restored them ${ms} ms after noticing (${report.ownerGone}): ${describeKnobs(report.restored)}`;
}

function reportFile(report: KsmGuardReport): string {
  return path.join(ksmStateDir(), `${PREFIX}${report.owner.pid}.${Date.parse(report.restoredAt) || Date.now()}${SUFFIX}`);
}

/** Leave `report` for the next run; returns its file. */
export function writeGuardReport(report: KsmGuardReport): string {
  const file = reportFile(report);
  const temp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(temp, 'wx', 0o644);
  try {
    fs.writeSync(fd, `${JSON.stringify(report, null, 2)}\n`);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  try {
    fs.renameSync(temp, file);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return file;
}

/**
 * Take every report left by KSM guards since the last call (oldest first): each is removed as it is taken,
 * so that of two runs only one reports it. Returns [] when there are none or the directory cannot be read; a
 * report this process may not remove (not root) is left for one that may.
 */
export function takeKsmGuardReports(): KsmGuardReport[] {
  const dir = ksmStateDir();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const reports: KsmGuardReport[] = [];
  for (const name of names.filter((n) => n.startsWith(PREFIX) && n.endsWith(SUFFIX))) {
    const file = path.join(dir, name);
    let report: KsmGuardReport;
    try {
      const text = fs.readFileSync(file, 'utf8');
      const parsed = JSON.parse(text) as Partial<KsmGuardReport> | null;
      if (typeof parsed?.warning !== 'string' || typeof parsed.owner?.pid !== 'number') throw new Error('not a guard report');
      report = parsed as KsmGuardReport;
    } catch (error) {
      report = unreadableReport(file, error);
    }
    try {
      fs.unlinkSync(file);
    } catch {
      continue; // taken by another process meanwhile, or not ours to remove
    }
    reports.push(report);
  }
  return reports.sort((a, b) => a.restoredAt.localeCompare(b.restoredAt));
}

function unreadableReport(file: string, error: unknown): KsmGuardReport {
  const pid = Number(/\.(\d+)\.\d+\.json$/.exec(file)?.[1] ?? 0);
  return {
    version: 1,
    owner: { pid, hostname: '' },
    ownerSince: '',
    guardPid: 0,
    noticedBy: 'lifeline',
    ownerGone: '',
    noticedAt: '',
    restoredAt: '',
    saved: {},
    found: {},
    restored: {},
    problems: [`unreadable report: ${errorMessage(error)}`],
    warning: `a KSM guard left a report that cannot be read (${file}: ${errorMessage(error)}); check /sys/kernel/mm/ksm by hand`,
  };
}
