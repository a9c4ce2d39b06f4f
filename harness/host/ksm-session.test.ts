/**
 * KsmSession's save/apply/restore and locking against a fake KSM directory of plain files (XME_KSM_SYSFS)
 * and a temporary state directory. The real kernel is in ksm-session.e2e.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runAllCleanups } from '../util/cleanup.ts';
import { XmeError } from '../util/errors.ts';
import { KSM_DEFAULT_SETTINGS, KsmSession, recoverAbandonedKsmState, type KsmSettings } from './ksm.ts';
import { createFakeKsm, FAKE_KSM_KNOBS } from './testing/fake-ksm-sysfs.ts';

const fake = createFakeKsm();
const original = fake.snapshot();
const settings: KsmSettings = { pagesToScan: 3000, sleepMillisecs: 50, useZeroPages: true, smartScan: false, advisorMode: 'none' };
const sessions: KsmSession[] = [];
const children: ChildProcess[] = [];

function acquire(s: KsmSettings = settings, onNotice?: (message: string) => void): KsmSession {
  const session = KsmSession.acquire(s, { onNotice: onNotice ?? ((message) => expect.fail(`unexpected notice: ${message}`)) });
  sessions.push(session);
  return session;
}

/** A state file as an xme process `pid` would have left it. */
function writeState(pid: number, saved: Record<string, string> | null): void {
  fs.mkdirSync(fake.stateDir, { recursive: true });
  const record = { version: 1, owner: { pid, hostname: os.hostname() }, createdAt: '2026-11-27T10:00:00.000Z', saved };
  fs.writeFileSync(fake.stateFile, JSON.stringify(record));
}

/** A PID that no longer runs. */
function deadPid(): number {
  return spawnSync('true').pid!;
}

/** A PID that runs for the test's length (killed by its PID afterwards). */
function livePid(): number {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  children.push(child);
  return child.pid!;
}

beforeEach(() => fake.reset());
afterEach(() => {
  for (const session of sessions.splice(0)) session.release();
});
afterAll(() => {
  for (const child of children) if (child.exitCode === null) process.kill(child.pid!, 'SIGKILL');
  fake.remove();
});

describe('KsmSession (fake sysfs)', () => {
  it('saves the knobs it changes, writes the state file, applies the settings and starts ksmd', () => {
    const session = acquire();
    expect(session.settings).toEqual(settings);
    expect(session.saved).toEqual({ run: '0', advisor_mode: 'none', pages_to_scan: '100', sleep_millisecs: '20', use_zero_pages: '0', smart_scan: '1' });
    expect(session.unchanged).toEqual({ max_page_sharing: '256', merge_across_nodes: '1' });
    expect(fake.snapshot()).toEqual({ ...original, run: '1', pages_to_scan: '3000', sleep_millisecs: '50', use_zero_pages: '1', smart_scan: '0' });
    const record = JSON.parse(fs.readFileSync(fake.stateFile, 'utf8'));
    expect(record.owner.pid).toBe(process.pid);
    expect(record.owner.pidStartTicks).toBeGreaterThan(0);
    expect(record.saved).toEqual(session.saved);
    expect(record.unchanged).toEqual(session.unchanged);
    expect(record.settings).toEqual(settings);
  });

  it('release restores every knob exactly and removes the state file', () => {
    fake.write('run', '1'); // the host runs KSM with its own settings
    fake.write('pages_to_scan', '777');
    fake.write('use_zero_pages', '1');
    const before = fake.snapshot();
    const session = acquire();
    expect(fake.snapshot()).not.toEqual(before);
    session.release();
    expect(fake.snapshot()).toEqual(before);
    expect(fs.existsSync(fake.stateFile)).toBe(false);
  });

  it('restores the advisor, and leaves pages_to_scan to it (the kernel refuses that write then)', () => {
    fake.write('advisor_mode', 'none [scan-time]');
    const before = fake.snapshot();
    const session = acquire();
    expect(fake.read('advisor_mode')).toBe('none');
    expect(fake.read('pages_to_scan')).toBe('3000');
    session.release();
    expect(fake.snapshot()).toEqual({ ...before, pages_to_scan: '3000' }); // the kernel's advisor resets it on the switch
  });

  it('release is idempotent', () => {
    const session = acquire();
    session.release();
    fake.write('run', '1'); // changed by someone else after the run
    session.release();
    expect(fake.read('run')).toBe('1');
    expect(fs.existsSync(fake.stateFile)).toBe(false);
  });

  it('restores on the process-wide cleanup (signals and exit)', async () => {
    const session = acquire();
    await runAllCleanups();
    expect(fake.snapshot()).toEqual(original);
    expect(fs.existsSync(fake.stateFile)).toBe(false);
    session.release(); // already released by the cleanup: nothing happens
    expect(fake.snapshot()).toEqual(original);
  });

  it('refuses while another live xme process holds KSM, naming its PID', () => {
    const pid = livePid();
    writeState(pid, { run: '0', pages_to_scan: '100' });
    const stateBefore = fs.readFileSync(fake.stateFile, 'utf8');
    let error: unknown;
    try {
      acquire();
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(XmeError);
    expect((error as XmeError).message).toContain(`xme process ${pid}`);
    expect((error as XmeError).hint).toMatch(new RegExp(`wait for process ${pid}.*kill ${pid}`));
    expect(fake.snapshot()).toEqual(original); // nothing changed
    expect(fs.readFileSync(fake.stateFile, 'utf8')).toBe(stateBefore);
    expect(recoverAbandonedKsmState(() => expect.fail('a live owner is not abandoned'))).toBeUndefined();
    expect(fs.readFileSync(fake.stateFile, 'utf8')).toBe(stateBefore);
  });

  it('refuses a second session in the same process', () => {
    acquire();
    expect(() => KsmSession.acquire(settings)).toThrow(/already holds KSM/);
  });

  it('first restores what a dead owner left, says so, then proceeds', () => {
    const pid = deadPid();
    const hostValues = { run: '0', advisor_mode: 'none', pages_to_scan: '100', sleep_millisecs: '20', use_zero_pages: '0', smart_scan: '1' };
    writeState(pid, hostValues);
    // The dead owner's settings are still in place.
    fake.write('run', '1');
    fake.write('pages_to_scan', '9000');
    fake.write('use_zero_pages', '1');
    const notices: string[] = [];
    const session = acquire(settings, (message) => notices.push(message));
    expect(notices).toEqual([
      `restored KSM settings left by xme process ${pid} (killed?): run=0, advisor_mode=none, pages_to_scan=100, sleep_millisecs=20, use_zero_pages=0, smart_scan=1`,
    ]);
    expect(session.saved).toEqual(hostValues); // the host's values, not the dead run's
    session.release();
    expect(fake.snapshot()).toEqual(original);
  });

  it("recoverAbandonedKsmState restores a dead owner's values and reports them", () => {
    const pid = deadPid();
    writeState(pid, { run: '0', pages_to_scan: '100' });
    fake.write('run', '1');
    fake.write('pages_to_scan', '9000');
    const notices: string[] = [];
    expect(recoverAbandonedKsmState((message) => notices.push(message))).toEqual({ run: '0', pages_to_scan: '100' });
    expect(notices).toEqual([`restored KSM settings left by xme process ${pid} (killed?): run=0, pages_to_scan=100`]);
    expect(fake.snapshot()).toEqual(original);
    expect(fs.readdirSync(fake.stateDir)).toEqual([]);
    expect(recoverAbandonedKsmState(() => expect.fail('nothing left to recover'))).toBeUndefined();
  });

  it('removes the lock of an owner that died before saving anything', () => {
    const pid = deadPid();
    writeState(pid, null);
    const notices: string[] = [];
    expect(recoverAbandonedKsmState((message) => notices.push(message))).toEqual({});
    expect(notices[0]).toContain(`xme process ${pid}`);
    expect(fake.snapshot()).toEqual(original);
    expect(fs.existsSync(fake.stateFile)).toBe(false);
  });

  it('finishes a recovery whose recoverer died half-way', () => {
    const recoverer = deadPid();
    fs.mkdirSync(fake.stateDir, { recursive: true });
    const record = { version: 1, owner: { pid: deadPid(), hostname: os.hostname() }, createdAt: '', saved: { run: '0', smart_scan: '1' } };
    fs.writeFileSync(`${fake.stateFile}.recovering-${recoverer}`, JSON.stringify(record));
    fake.write('run', '1');
    fake.write('smart_scan', '0');
    expect(recoverAbandonedKsmState(() => {})).toEqual({ run: '0', smart_scan: '1' });
    expect(fake.snapshot()).toEqual(original);
    expect(fs.readdirSync(fake.stateDir)).toEqual([]);
  });

  it('refuses an unreadable state file instead of guessing', () => {
    fs.mkdirSync(fake.stateDir, { recursive: true });
    fs.writeFileSync(fake.stateFile, '{"owner": ');
    expect(() => acquire()).toThrow(/unreadable.*cannot be restored automatically/);
    expect(fake.snapshot()).toEqual(original);
  });

  it('refuses a setting this kernel lacks a knob for, before changing anything', () => {
    fs.rmSync(`${fake.sysfs}/smart_scan`);
    let error: unknown;
    try {
      acquire({ ...settings, smartScan: true });
    } catch (caught) {
      error = caught;
    }
    expect((error as XmeError).message).toMatch(/smart_scan=1 needs Linux 6.7/);
    expect((error as XmeError).hint).toContain('smart_scan: false');
    expect(fs.existsSync(fake.stateFile)).toBe(false);
    // What its absence means is fine.
    acquire({ ...settings, smartScan: false }).release();
  });

  it('puts everything back when the kernel refuses a value half-way', () => {
    // As the kernel would refuse a value: the write of smart_scan=0 fails with EINVAL, after others succeeded.
    const writeFileSync = fs.writeFileSync;
    const spy = vi.spyOn(fs, 'writeFileSync').mockImplementation((file, data, options) => {
      if (String(file).endsWith('/smart_scan') && data === '0') throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
      writeFileSync(file, data, options);
    });
    try {
      expect(() => acquire()).toThrow('KSM: cannot set smart_scan=0: the kernel refused the value (EINVAL)');
      expect(spy.mock.calls.map(([file, data]) => `${String(file).split('/').pop()}=${String(data)}`).filter((w) => !w.includes('ksm-state'))).toEqual([
        'pages_to_scan=3000',
        'sleep_millisecs=50',
        'use_zero_pages=1',
        'smart_scan=0',
        // restore: run was 0 already; advisor_mode was none already
        'pages_to_scan=100',
        'sleep_millisecs=20',
        'use_zero_pages=0',
        'smart_scan=1',
        'run=0',
      ]);
    } finally {
      spy.mockRestore();
    }
    expect(fake.snapshot()).toEqual(original);
    expect(fs.existsSync(fake.stateFile)).toBe(false);
    acquire().release(); // no stale lock or 'held' flag is left behind
  });

  it('refuses without KSM, saying what to do', () => {
    fs.rmSync(fake.sysfs, { recursive: true });
    let error: unknown;
    try {
      KsmSession.acquire(KSM_DEFAULT_SETTINGS);
    } catch (caught) {
      error = caught;
    }
    expect((error as XmeError).message).toContain('has no KSM');
    expect((error as XmeError).hint).toContain('CONFIG_KSM');
  });
});

it('the fake starts as this host boots', () => {
  expect(FAKE_KSM_KNOBS.advisor_mode).toBe('[none] scan-time');
});
