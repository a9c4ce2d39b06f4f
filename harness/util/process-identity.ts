/**
 * Who a process is, in a form that survives it: its PID, host, start time and boot id. A PID alone is not
 * enough to tell later whether a process still runs, as PIDs are reused. Used for the owner of a run
 * (run.json's `owner`, harness/experiment/abandoned-runs.ts) and of the host's KSM state
 * (harness/host/ksm-state.ts).
 *
 * A process is gone when, on this host, its PID no longer exists, is a zombie, or is now another process
 * (its start time in /proc/<pid>/stat differs), or the machine was rebooted since (boot id differs).
 */
import fs from 'node:fs';
import os from 'node:os';
import { processExists } from './process.ts';

/** A process as recorded by ownerIdentity(). */
export interface ProcessIdentity {
  pid: number;
  hostname: string;
  /** Field 22 of /proc/<pid>/stat: the process's start time, in clock ticks since boot (absent without /proc). */
  pidStartTicks?: number;
  /** /proc/sys/kernel/random/boot_id: tells a PID of an earlier boot from the same PID now (absent without /proc). */
  bootId?: string;
}

/** run.json's `owner`: the harness process writing the run. */
export type RunOwner = ProcessIdentity;

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
  const after = text
    .slice(text.lastIndexOf(')') + 2)
    .trim()
    .split(' ');
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

/** The identity of process `pid` (default: the current process); put this in run.json as `owner`. */
export function ownerIdentity(pid: number = process.pid): ProcessIdentity {
  const owner: ProcessIdentity = { pid, hostname: os.hostname() };
  try {
    const stat = procStat(pid);
    if (stat) owner.pidStartTicks = stat.startTicks;
  } catch {
    // no usable /proc: the PID alone will be checked
  }
  const bootId = currentBootId();
  if (bootId) owner.bootId = bootId;
  return owner;
}

/** Why the process `owner` names is known to be gone, or undefined if it may still be running (or cannot be checked). */
export function ownerGone(owner: ProcessIdentity): string | undefined {
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

/** Whether two identities name the same process (same PID, start time and boot). */
export function sameProcess(a: ProcessIdentity, b: ProcessIdentity): boolean {
  return a.pid === b.pid && a.pidStartTicks === b.pidStartTicks && a.bootId === b.bootId;
}
