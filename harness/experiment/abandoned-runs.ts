/**
 * Runs whose harness process died without sealing them. The runner seals run.json on every ending it sees
 * (completed, interrupted, failed), but SIGKILL (or a crash of the machine) leaves it at status "running"
 * forever. markAbandonedRuns finds such runs and says so in their run.json: status "abandoned", when that was
 * found, and why. samples.csv is left as it is: every row in it was complete when written.
 *
 * Who owns a run: run.json carries `owner` (ownerIdentity() of the harness process that writes it). The owner
 * is gone when, on this host, its PID no longer exists, is a zombie, or is now another process (its start
 * time in /proc/<pid>/stat differs: PIDs are reused), or the machine was rebooted since (boot id differs).
 * A run owned by another host is never touched: its process cannot be checked from here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { processExists } from '../util/process.ts';
import { writeJsonAtomically } from './run-record.ts';

/** run.json's `owner`: the harness process writing the run. */
export interface RunOwner {
  pid: number;
  hostname: string;
  /** Field 22 of /proc/<pid>/stat: the process's start time, in clock ticks since boot (absent without /proc). */
  pidStartTicks?: number;
  /** /proc/sys/kernel/random/boot_id: tells a PID of an earlier boot from the same PID now (absent without /proc). */
  bootId?: string;
}

export interface AbandonedRunsReport {
  /** Run ids (folder names) newly marked abandoned, sorted. */
  abandoned: string[];
  /** Run folders whose run.json could not be read, parsed or rewritten; left as they are. */
  unreadable: { runId: string; reason: string }[];
}

const STAT_START_TIME_FIELD = 22;
const STAT_STATE_FIELD = 3;

interface ProcStat {
  state: string;
  startTicks: number;
}

/** Fields of /proc/<pid>/stat, or undefined if the process is gone; throws if /proc cannot tell. */
function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ESRCH') return undefined;
    throw error;
  }
  // Field 2 is the command name in parentheses and may hold spaces and ')': the fields after it start at the last ')'.
  const after = text.slice(text.lastIndexOf(')') + 2).trim().split(' ');
  const state = after[STAT_STATE_FIELD - 3];
  const startTicks = Number(after[STAT_START_TIME_FIELD - 3]);
  if (!state || !Number.isSafeInteger(startTicks)) throw new Error(`unexpected /proc/${pid}/stat: ${text.slice(0, 200)}`);
  return { state, startTicks };
}

function currentBootId(): string | undefined {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The current process as a run's owner: put this in run.json as `owner`. */
export function ownerIdentity(): RunOwner {
  const owner: RunOwner = { pid: process.pid, hostname: os.hostname() };
  try {
    const stat = procStat(process.pid);
    if (stat) owner.pidStartTicks = stat.startTicks;
  } catch {
    // no usable /proc: the PID alone will be checked
  }
  const bootId = currentBootId();
  if (bootId) owner.bootId = bootId;
  return owner;
}

/**
 * Why a run's owner is known to be gone, or undefined if it may still be running (or cannot be checked).
 * Also used for the owner of the host's KSM state (harness/host/ksm-state.ts).
 */
export function ownerGone(owner: RunOwner): string | undefined {
  if (owner.hostname !== os.hostname()) return undefined; // not ours to judge
  const bootId = currentBootId();
  if (owner.bootId && bootId && owner.bootId !== bootId) return 'the machine was rebooted since';
  if (!processExists(owner.pid)) return 'no such process';
  let stat: ProcStat | undefined;
  try {
    stat = procStat(owner.pid);
  } catch {
    return undefined; // /proc hidden or unusual: the PID exists, so assume it is the owner
  }
  if (!stat) return 'no such process';
  if (stat.state === 'Z') return 'a zombie';
  if (owner.pidStartTicks !== undefined && stat.startTicks !== owner.pidStartTicks) return 'the PID belongs to another process now';
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `owner` of a run.json, undefined when absent; throws with a reason when present but malformed. */
function parseOwner(value: unknown): RunOwner | undefined {
  if (value === undefined || value === null) return undefined;
  if (!isRecord(value)) throw new Error('owner is not an object');
  const { pid, hostname, pidStartTicks, bootId } = value;
  if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid <= 0) throw new Error(`owner.pid ${JSON.stringify(pid)} is not a PID`);
  if (typeof hostname !== 'string' || hostname === '') throw new Error(`owner.hostname ${JSON.stringify(hostname)} is not a host name`);
  if (pidStartTicks !== undefined && (typeof pidStartTicks !== 'number' || !Number.isSafeInteger(pidStartTicks) || pidStartTicks < 0)) {
    throw new Error(`owner.pidStartTicks ${JSON.stringify(pidStartTicks)} is not a tick count`);
  }
  if (bootId !== undefined && typeof bootId !== 'string') throw new Error(`owner.bootId ${JSON.stringify(bootId)} is not a string`);
  return {
    pid,
    hostname,
    ...(pidStartTicks !== undefined ? { pidStartTicks } : {}),
    ...(bootId !== undefined ? { bootId } : {}),
  };
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Mark as "abandoned" every results/<run-id>/run.json at status "running" whose owner is gone (see above).
 * A run.json without `owner` (written before the field existed) cannot be checked and is marked abandoned
 * too, saying so. Never throws for a bad run folder: it goes to `unreadable` and is left alone.
 */
export function markAbandonedRuns(resultsRoot: string, now: Date = new Date()): AbandonedRunsReport {
  const report: AbandonedRunsReport = { abandoned: [], unreadable: [] };
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(resultsRoot, { withFileTypes: true });
  } catch {
    return report; // no results yet
  }
  for (const runId of entries.filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
    const file = path.join(resultsRoot, runId, 'run.json');
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (error) {
      // A folder without run.json is not a run (or one whose first run.json is being written right now).
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') report.unreadable.push({ runId, reason: message(error) });
      continue;
    }
    let record: Record<string, unknown>;
    let owner: RunOwner | undefined;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!isRecord(parsed)) throw new Error('run.json is not a JSON object');
      if (typeof parsed.status !== 'string') throw new Error('run.json has no status');
      if (parsed.status !== 'running') continue;
      record = parsed;
      owner = parseOwner(parsed.owner);
    } catch (error) {
      report.unreadable.push({ runId, reason: message(error) });
      continue;
    }

    let note: string;
    if (owner) {
      if (ownerGone(owner) === undefined) continue;
      note = `the harness process (pid ${owner.pid}) ended without sealing this run (killed?); samples.csv holds every row written before that`;
    } else {
      note = 'the harness process could not be checked (this run.json predates the owner field), so it is taken to have ended without sealing this run (killed?); samples.csv holds every row written before that';
    }
    try {
      writeJsonAtomically(file, { ...record, status: 'abandoned', abandonedFoundAt: now.toISOString(), abandonedNote: note });
      report.abandoned.push(runId);
    } catch (error) {
      report.unreadable.push({ runId, reason: `could not be rewritten: ${message(error)}` });
    }
  }
  return report;
}
