/**
 * The KSM guard against the fake KSM directory (plain files, XME_KSM_SYSFS) and a temporary state directory:
 * real guard processes and real SIGKILLs, but no kernel. The real /sys/kernel/mm/ksm is in ksm-guard.e2e.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../util/paths.ts';
import { processAlive } from '../util/process.ts';
import { ownerIdentity, type ProcessIdentity } from '../util/process-identity.ts';
import { KsmSession, recoverAbandonedKsmState, takeKsmGuardReports, type KsmSettings } from './ksm.ts';
import { KsmGuard } from './ksm-guard.ts';
import { restoreAfterOwnerDied } from './ksm-guard-process.ts';
import { ksmStateFile, readStateFile, type KsmStateRecord } from './ksm-state.ts';
import { createFakeKsm } from './testing/fake-ksm-sysfs.ts';

const fake = createFakeKsm();
const original = fake.snapshot();
const settings: KsmSettings = { pagesToScan: 3000, sleepMillisecs: 10, useZeroPages: true, smartScan: false, advisorMode: 'none' };
const whileHeld = { ...original, run: '1', pages_to_scan: '3000', sleep_millisecs: '10', use_zero_pages: '1', smart_scan: '0' };
const CHILD = path.join(projectRoot, 'harness', 'host', 'testing', 'ksm-session-child.ts');
const children = new Set<ChildProcess>();
const sessions: KsmSession[] = [];
const guards: KsmGuard[] = [];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Poll `check` every 2 ms until it holds or `timeoutMs` passed; returns the ms it took (Infinity: never). */
/** How long a guard may take to end once done: not the 2 s the knobs must be back in, a process exit on a loaded host. */
const GUARD_EXIT_MS = 5000;

async function within(timeoutMs: number, check: () => boolean): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) return Number.POSITIVE_INFINITY;
    await sleep(2);
  }
}

/**
 * The fixture holding KSM (on the fake directory: it inherits XME_KSM_SYSFS and XME_KSM_STATE_DIR); resolves at
 * READY. `ownGroup`: it leads a process group, as a shell's foreground job does, so that the group can be signalled.
 */
async function startHolder(ownGroup = false): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(settings)], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: ownGroup,
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY within 60 s; stderr: ${stderr}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (/^READY /m.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the holder exited (${code ?? signal}) before READY; stderr: ${stderr}`));
    });
  });
  return child;
}

async function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal };
}

function guardPidInStateFile(): number {
  const pid = readStateFile()?.guard?.pid;
  expect(pid).toBeTypeOf('number');
  return pid!;
}

/** A state file as `owner` would have left it, holding KSM with `settings` (the fake's boot values saved). */
function writeState(owner: ProcessIdentity): KsmStateRecord {
  fs.mkdirSync(fake.stateDir, { recursive: true });
  const saved = { run: '0', advisor_mode: 'none', pages_to_scan: '100', sleep_millisecs: '20', use_zero_pages: '0', smart_scan: '1' };
  const record: KsmStateRecord = { version: 1, owner, createdAt: '2026-12-01T10:00:00.000Z', settings, saved, unchanged: {} };
  fs.writeFileSync(fake.stateFile, JSON.stringify(record));
  return record;
}

function holdSettings(): void {
  for (const [knob, value] of Object.entries(whileHeld)) if (original[knob] !== value) fake.write(knob, value);
}

/** The identity of a process that ran and is gone. */
function deadOwner(): ProcessIdentity {
  return { ...ownerIdentity(), pid: spawnSync('true').pid!, pidStartTicks: 1 };
}

function sessionOf(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]!; // field 6: session id
}

beforeEach(() => {
  fake.reset();
  takeKsmGuardReports();
});
afterEach(() => {
  for (const session of sessions.splice(0)) session.release();
  for (const guard of guards.splice(0)) guard.standDown();
});
afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    await exitOf(child);
  }
  fake.remove();
});

describe('KSM guard (fake sysfs, real processes)', () => {
  it("restores every knob within 2 s of the holder's SIGKILL, without another run, and leaves a report the next run takes", async () => {
    const holder = await startHolder();
    const guardPid = guardPidInStateFile();
    expect(fake.snapshot()).toEqual(whileHeld);
    holder.kill('SIGKILL');
    const ms = await within(2000, () => JSON.stringify(fake.snapshot()) === JSON.stringify(original));
    expect(fake.snapshot()).toEqual(original);
    expect(ms).toBeLessThan(2000);
    expect(await exitOf(holder)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await within(GUARD_EXIT_MS, () => !processAlive(guardPid))).toBeLessThan(GUARD_EXIT_MS); // it ends once done
    expect(fs.existsSync(ksmStateFile())).toBe(false);

    const reports = takeKsmGuardReports();
    expect(reports).toHaveLength(1);
    const [report] = reports;
    expect(report!.owner.pid).toBe(holder.pid);
    expect(report!.guardPid).toBe(guardPid);
    expect(report!.noticedBy).toBe('lifeline');
    expect(report!.settings).toEqual(settings);
    expect(report!.found).toEqual({ run: '1', advisor_mode: 'none', pages_to_scan: '3000', sleep_millisecs: '10', use_zero_pages: '1', smart_scan: '0' });
    expect(report!.restored).toEqual({ run: '0', pages_to_scan: '100', sleep_millisecs: '20', use_zero_pages: '0', smart_scan: '1' });
    expect(report!.problems).toEqual([]);
    expect(report!.warning).toMatch(
      new RegExp(
        `^xme process ${holder.pid} .*its KSM guard \\(pid ${guardPid}\\) restored them \\d+ ms after noticing \\(.+\\): run=0, pages_to_scan=100, sleep_millisecs=20, use_zero_pages=0, smart_scan=1$`,
      ),
    );
    process.stderr.write(`[ksm guard] fake sysfs: every knob back ${ms.toFixed(0)} ms after SIGKILL\n`);
    expect(takeKsmGuardReports()).toEqual([]); // taken once
    expect(recoverAbandonedKsmState(() => expect.fail('nothing is left for the next run to recover'))).toBeUndefined();
  }, 90_000);

  it('stands down when the holder restores itself (Ctrl-C: SIGINT to its process group): ends, touches nothing, leaves no report', async () => {
    const holder = await startHolder(true);
    const guardPid = guardPidInStateFile();
    process.kill(-holder.pid!, 'SIGINT'); // as the terminal does: the guard, in a session of its own, gets none
    expect(await exitOf(holder)).toEqual({ code: 130, signal: null });
    expect(fake.snapshot()).toEqual(original);
    expect(await within(GUARD_EXIT_MS, () => !processAlive(guardPid))).toBeLessThan(GUARD_EXIT_MS); // does not outlive the session
    expect(fs.readdirSync(fake.stateDir)).toEqual([]);
    expect(takeKsmGuardReports()).toEqual([]);
  }, 90_000);

  it('after release, ends without touching a knob another program changed meanwhile', async () => {
    const session = KsmSession.acquire(settings, { onNotice: (message) => expect.fail(`unexpected notice: ${message}`) });
    const guardPid = session.guardPid!;
    expect(processAlive(guardPid)).toBe(true);
    expect(sessionOf(guardPid)).toBe(String(guardPid)); // a session of its own: no Ctrl-C from the terminal
    expect(sessionOf(guardPid)).not.toBe(sessionOf(process.pid));
    session.release();
    fake.write('run', '1'); // someone else turns KSM on right after the run
    expect(await within(GUARD_EXIT_MS, () => !processAlive(guardPid))).toBeLessThan(GUARD_EXIT_MS);
    await sleep(300);
    expect(fake.snapshot()).toEqual({ ...original, run: '1' });
    expect(takeKsmGuardReports()).toEqual([]);
  });

  it('no program started while the session holds KSM inherits the lifeline (its end-of-file would wait for it)', async () => {
    const session = KsmSession.acquire(settings, { onNotice: (message) => expect.fail(`unexpected notice: ${message}`) });
    sessions.push(session);
    const lifeline = fs.readlinkSync(`/proc/${session.guardPid}/fd/0`);
    expect(lifeline).toMatch(/^pipe:\[\d+\]$/);
    const holdersOf = (pid: number | string): string[] =>
      fs.readdirSync(`/proc/${pid}/fd`).filter((fd) => {
        try {
          return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === lifeline;
        } catch {
          return false; // closed meanwhile
        }
      });
    expect(holdersOf(process.pid)).toHaveLength(1); // this process: the write end
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.add(other);
    await once(other, 'spawn');
    expect(holdersOf(other.pid!)).toEqual([]);
    expect(holdersOf(session.guardPid!)).toEqual(['0']); // the guard: its read end only
    other.kill('SIGKILL');
    await exitOf(other);
  });

  it('if the guard dies, the session says so and starts another', async () => {
    const notices: string[] = [];
    const session = KsmSession.acquire(settings, { onNotice: (message) => notices.push(message) });
    sessions.push(session);
    const first = session.guardPid!;
    process.kill(first, 'SIGKILL');
    expect(await within(10_000, () => session.guardPid !== undefined && session.guardPid !== first)).toBeLessThan(10_000);
    const second = session.guardPid!;
    expect(notices).toEqual([`KSM: the guard process ${first} ended (killed by SIGKILL) while the run holds KSM; starting another`]);
    expect(readStateFile()?.guard?.pid).toBe(second);
    expect(fake.snapshot()).toEqual(whileHeld); // the dead guard did nothing
    session.release();
    expect(await within(GUARD_EXIT_MS, () => !processAlive(second))).toBeLessThan(GUARD_EXIT_MS);
    expect(fake.snapshot()).toEqual(original);
  });

  it('notices a death by its periodic check even while the lifeline stays open', async () => {
    // The owner is a `sleep` process; this test holds the lifeline's write end, so no end-of-file comes.
    const owner = spawn('sleep', ['60'], { stdio: 'ignore' });
    children.add(owner);
    const identity = ownerIdentity(owner.pid!);
    writeState(identity);
    holdSettings();
    const notices: string[] = [];
    guards.push(KsmGuard.start(identity, { onNotice: (message) => notices.push(message) }));
    const guardPid = guards[0]!.pid!;
    owner.kill('SIGKILL');
    expect(await within(2000, () => JSON.stringify(fake.snapshot()) === JSON.stringify(original))).toBeLessThan(2000);
    expect(await within(GUARD_EXIT_MS, () => !processAlive(guardPid))).toBeLessThan(GUARD_EXIT_MS); // its report is written by then
    const reports = takeKsmGuardReports();
    expect(reports.map((r) => [r.owner.pid, r.guardPid, r.noticedBy])).toEqual([[owner.pid, guardPid, 'poll']]);
    expect(notices).toEqual([]); // it ended by itself, having done its job: not restarted
  });

  it("refuses to watch a state file that is not its owner's (says why, changes nothing)", () => {
    writeState(deadOwner());
    const notices: string[] = [];
    guards.push(KsmGuard.start(ownerIdentity(), { onNotice: (message) => notices.push(message) }));
    expect(guards[0]!.pid).toBeUndefined();
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(
      /guard process .* did not start \(the KSM state file belongs to xme process \d+, not \d+\); if xme is killed now, the next xme run restores them/,
    );
  });
});

describe('restoreAfterOwnerDied (in this process)', () => {
  const death = { noticedBy: 'lifeline' as const, noticedAt: new Date(), gone: 'no such process' };

  it('writes nothing when every knob reads as saved already (the owner died after restoring)', () => {
    const owner = deadOwner();
    writeState(owner);
    const writeFileSync = vi.spyOn(fs, 'writeFileSync');
    let report: ReturnType<typeof restoreAfterOwnerDied>;
    try {
      report = restoreAfterOwnerDied(owner, death);
      expect(writeFileSync.mock.calls.map(([file]) => String(file)).filter((file) => file.startsWith(fake.sysfs))).toEqual([]);
    } finally {
      writeFileSync.mockRestore();
    }
    expect(report!.restored).toEqual({});
    expect(report!.warning).toContain('found them restored already and changed nothing');
    expect(fake.snapshot()).toEqual(original);
    expect(fs.existsSync(fake.stateFile)).toBe(false);
    expect(takeKsmGuardReports()).toHaveLength(1);
  });

  it("leaves alone a state file that is gone, or now another owner's (restored already, or taken by a later run)", () => {
    const owner = deadOwner();
    holdSettings();
    expect(restoreAfterOwnerDied(owner, death)).toBeUndefined();
    const other = writeState(ownerIdentity());
    expect(restoreAfterOwnerDied(owner, death)).toBeUndefined();
    expect(readStateFile()).toEqual(other);
    expect(fake.snapshot()).toEqual(whileHeld);
    expect(takeKsmGuardReports()).toEqual([]);
  });

  it('restores only the knobs that differ from the saved values, and says which', () => {
    const owner = deadOwner();
    writeState(owner);
    fake.write('run', '1');
    fake.write('sleep_millisecs', '10');
    const report = restoreAfterOwnerDied(owner, death)!;
    expect(report.restored).toEqual({ run: '0', sleep_millisecs: '20' });
    expect(fake.snapshot()).toEqual(original);
  });

  it('puts the state file back for the next run when a knob cannot be restored, and reports the problem', () => {
    const owner = deadOwner();
    writeState(owner);
    holdSettings();
    const writeFileSync = fs.writeFileSync;
    const spy = vi.spyOn(fs, 'writeFileSync').mockImplementation((file, data, options) => {
      if (String(file).endsWith('/smart_scan')) throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
      writeFileSync(file, data, options);
    });
    let report: ReturnType<typeof restoreAfterOwnerDied>;
    try {
      report = restoreAfterOwnerDied(owner, death);
    } finally {
      spy.mockRestore();
    }
    expect(report!.problems).toContain('KSM: cannot set smart_scan=1: the kernel refused the value (EINVAL)');
    expect(report!.warning).toMatch(/could not restore them all: .* the next xme run retries from the state file/);
    expect(readStateFile()?.owner).toEqual(owner); // back under its name
    expect(fs.readdirSync(fake.stateDir).filter((name) => name.includes('.recovering-'))).toEqual([]);
    expect(takeKsmGuardReports()).toHaveLength(1);
    expect(recoverAbandonedKsmState(() => undefined)).toEqual(report!.saved); // the second line of defence
    expect(fake.snapshot()).toEqual(original);
  });
});
