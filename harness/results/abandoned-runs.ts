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
import path from 'node:path';
import { ownerGone, type RunOwner } from '../util/process-identity.ts';
import { writeJsonAtomically } from './run-record.ts';

export interface AbandonedRunsReport {
  /** Run ids (folder names) newly marked abandoned, sorted. */
  abandoned: string[];
  /** Run folders whose run.json could not be read, parsed or rewritten; left as they are. */
  unreadable: { runId: string; reason: string }[];
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
  for (const runId of entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort()) {
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
      note =
        'the harness process could not be checked (this run.json predates the owner field), so it is taken to have ended without sealing this run (killed?); samples.csv holds every row written before that';
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
