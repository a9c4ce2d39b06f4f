/**
 * What runs inside the KSM guard process (started by ksm-guard.ts, entry point ksm-guard-main.ts): wait for the
 * xme process that holds KSM to end, and if it ended without restoring the host's KSM settings, restore them.
 *
 * The guard learns of the end from its lifeline, fd 0: a pipe whose only write end the xme process holds (it
 * is close-on-exec, so no other program it starts inherits it). The kernel closes it when that process
 * dies, however it dies — SIGKILL and the OOM killer included — and the guard reads end-of-file at once. A
 * process that restored the settings itself writes STAND_DOWN first: the guard then exits touching
 * nothing. As a second watch, the guard checks every POLL_MS whether the process is gone (ownerGone), in
 * case some program kept the write end open.
 *
 * Ended without STAND_DOWN, the guard waits until the process is really gone (a zombie or reaped), then
 * takes the state file (ksm-state.ts) the way a next run's recovery would — claimStateFile, so of the two
 * only one restores — but only if it is still the dead process's own: a state file that is gone or
 * belongs to another owner means the settings were restored already. Knobs that read as saved are not
 * written at all. What it did is left in a report for the next run (ksm-guard-report.ts) and on stderr.
 */
import fs from 'node:fs';
import os from 'node:os';
import { errorMessage } from '../util/errors.ts';
import { ownerGone, sameProcess, type ProcessIdentity } from '../util/process-identity.ts';
import { knobsToRestore, restoreKnobs } from './ksm-apply.ts';
import { guardWarning, writeGuardReport, type KsmGuardReport } from './ksm-guard-report.ts';
import { readKnob } from './ksm-knobs.ts';
import { claimStateFile, readStateFile, unclaimStateFile } from './ksm-state.ts';

/** The guard's end of the lifeline pipe. */
export const LIFELINE_FD = 0;
/** Where the guard says "READY <pid>" (or "FAIL <why>") once it watches, then closes. */
export const READY_FD = 3;
/** Written on the lifeline by an xme process that restored (or took care of) the settings itself. */
export const STAND_DOWN = 'R';
/** The second watch: how often the guard checks whether its xme process is gone. */
export const POLL_MS = 200;
/** After end-of-file, how long the xme process may take to become a zombie before the guard decides it lives. */
const DEATH_CONFIRM_MS = 10_000;

export interface Death {
  noticedBy: KsmGuardReport['noticedBy'];
  noticedAt: Date;
  /** ownerGone's reason. */
  gone: string;
}

const say = (message: string): void => {
  try {
    fs.writeSync(2, `xme KSM guard ${process.pid}: ${message}\n`);
  } catch {
    // stderr gone (the terminal closed): the report file still says it
  }
};

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The host name need not match: the state file is host-local (/run), as in ownerStatus. */
const goneReason = (owner: ProcessIdentity): string | undefined => ownerGone({ ...owner, hostname: os.hostname() });

/** The guard's whole life; resolves to its exit status. `args`: the owner's identity as JSON. */
export async function runKsmGuard(args: readonly string[]): Promise<number> {
  // Detached into a session of its own, it gets no Ctrl-C or hang-up from the terminal; sent by hand, they
  // must not make it act either. SIGTERM keeps its default: the guard ends, touching nothing.
  for (const signal of ['SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);
  let owner: ProcessIdentity;
  try {
    owner = JSON.parse(args[0] ?? '') as ProcessIdentity;
    const record = readStateFile();
    if (!record) throw new Error('there is no KSM state file');
    if (!sameProcess(record.owner, owner)) throw new Error(`the KSM state file belongs to xme process ${record.owner.pid}, not ${owner.pid}`);
    if (record.saved === null) throw new Error('the KSM state file holds no saved values yet');
  } catch (error) {
    tellReady(`FAIL ${errorMessage(error)}`);
    return 1;
  }
  tellReady(`READY ${process.pid}`);
  const death = await watch(owner);
  if (death === 'stand down') return 0;
  if (death === 'alive') {
    say(`the lifeline of xme process ${owner.pid} closed but it still runs: it restores KSM itself; ending`);
    return 0;
  }
  const report = restoreAfterOwnerDied(owner, death);
  if (report) say(report.warning);
  return report && report.problems.length > 0 ? 2 : 0;
}

function tellReady(line: string): void {
  try {
    fs.writeSync(READY_FD, `${line}\n`);
    fs.closeSync(READY_FD);
  } catch {
    // the xme process stopped waiting (it gave up, or died): the lifeline says which
  }
}

/** Until the owner ends: 'stand down' if it said so, 'alive' if the lifeline closed yet it runs on, else how it died. */
function watch(owner: ProcessIdentity): Promise<'stand down' | 'alive' | Death> {
  return new Promise((resolve) => {
    let deciding = false;
    let stoodDown = false;
    const lifeline = process.stdin;
    const timer = setInterval(() => {
      if (goneReason(owner) !== undefined) void decide('poll');
    }, POLL_MS);
    const decide = async (noticedBy: Death['noticedBy']): Promise<void> => {
      if (deciding) return;
      deciding = true;
      const noticedAt = new Date();
      clearInterval(timer);
      // End-of-file comes as the dying process closes its files, a moment before it is a zombie.
      const deadline = Date.now() + DEATH_CONFIRM_MS;
      let gone = goneReason(owner);
      while (gone === undefined && !stoodDown && Date.now() < deadline) {
        await sleep(2);
        gone = goneReason(owner);
      }
      await sleep(1); // a STAND_DOWN already in the pipe is read first (the poll may see the end before it)
      if (stoodDown) return;
      resolve(gone === undefined ? 'alive' : { noticedBy, noticedAt, gone });
    };
    lifeline.on('data', (chunk: Buffer) => {
      if (!chunk.includes(STAND_DOWN)) return;
      stoodDown = true;
      clearInterval(timer);
      resolve('stand down');
    });
    lifeline.on('end', () => void decide('lifeline'));
    lifeline.on('error', () => void decide('lifeline'));
  });
}

function knobValues(names: readonly string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) {
    try {
      values[name] = readKnob(name);
    } catch (error) {
      values[name] = `(unreadable: ${errorMessage(error)})`;
    }
  }
  return values;
}

/**
 * After `owner` died: restore the settings its state file saved, if that file is still its own (else they
 * were restored already: undefined, nothing touched). Knobs that read as saved are not written. Leaves a
 * report for the next run and returns it; if a knob cannot be restored, the state file is put back for the
 * next run's recovery.
 */
export function restoreAfterOwnerDied(owner: ProcessIdentity, death: Death): KsmGuardReport | undefined {
  let record: ReturnType<typeof readStateFile>;
  try {
    record = readStateFile();
  } catch (error) {
    say(`${errorMessage(error)}; leaving it to the next xme run, which says what to do`);
    return undefined;
  }
  if (!record || !sameProcess(record.owner, owner)) return undefined; // restored and removed, or recovered by a later run
  const claim = claimStateFile(record);
  if (!claim) return undefined; // a later run's recovery took it first
  const saved = claim.record.saved ?? {};
  const compared = knobsToRestore(saved);
  const found = knobValues(compared);
  const differing = compared.filter((knob) => found[knob] !== saved[knob]);
  // restoreKnobs stops ksmd first and writes every knob: only when something is not as saved.
  const problems = differing.length > 0 ? restoreKnobs(saved) : [];
  const facts: Omit<KsmGuardReport, 'warning'> = {
    version: 1,
    owner: claim.record.owner,
    ownerSince: claim.record.createdAt,
    ...(claim.record.settings ? { settings: claim.record.settings } : {}),
    guardPid: process.pid,
    noticedBy: death.noticedBy,
    ownerGone: death.gone,
    noticedAt: death.noticedAt.toISOString(),
    restoredAt: new Date().toISOString(),
    saved,
    found,
    restored: Object.fromEntries(differing.map((knob) => [knob, saved[knob]!])),
    problems,
  };
  const report: KsmGuardReport = { ...facts, warning: guardWarning(facts) };
  try {
    writeGuardReport(report);
  } catch (error) {
    say(`could not leave a report for the next run: ${errorMessage(error)}`);
  }
  if (problems.length > 0) unclaimStateFile(claim.file);
  else fs.rmSync(claim.file, { force: true });
  return report;
}
