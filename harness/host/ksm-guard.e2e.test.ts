/**
 * The KSM guard against the real /sys/kernel/mm/ksm (root; the fake-directory tests are ksm-guard.test.ts).
 * A child process holds KSM with settings unlike the host's and is killed with SIGKILL: within 2 s, and
 * without another run, every knob is back as it was, and the guard left a report for the next run. After
 * SIGINT the child restores itself, and its guard ends without a report. afterAll puts the host's values
 * back whatever happened. Skipped (visibly) unless root with a writable KSM directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.ts';
import { processAlive } from '../util/process.ts';
import { ksmAvailable, recoverAbandonedKsmState, takeKsmGuardReports, type KsmSettings } from './ksm.ts';
import { CHANGED_KNOBS, readKnobs, RECORDED_KNOBS } from './ksm-knobs.ts';
import { restoreKnobs } from './ksm-apply.ts';
import { KSM_STATE_DIR, ksmStateFile, readStateFile } from './ksm-state.ts';
import { takeKsmTestLock } from '../testing/ksm-test-lock.ts';

// The real knobs, whatever the environment says. The state file and the guard's reports go to a folder of
// this test's own beside /run/xme/ksm-state.json (the same tmpfs): any other `xme run` on the host (test files
// run in parallel) recovers dead owners' state and takes guard reports from /run/xme, and would take this
// test's. Test files that change KSM take turns through the KSM test lock.
delete process.env.XME_KSM_SYSFS;
delete process.env.XME_KSM_STATE_DIR;

const available = ksmAvailable();
const usable = process.getuid?.() === 0 && available.ok;
const why = process.getuid?.() !== 0 ? 'not root' : available.ok ? '' : available.why;
if (usable) {
  fs.mkdirSync(KSM_STATE_DIR, { recursive: true });
  process.env.XME_KSM_STATE_DIR = fs.mkdtempSync(path.join(KSM_STATE_DIR, 'guard-e2e-'));
}

const CHILD = path.join(projectRoot, 'harness', 'host', 'testing', 'ksm-session-child.ts');
const ALL_KNOBS = [...CHANGED_KNOBS, ...RECORDED_KNOBS];
const TRIALS = 3;
const children = new Set<ChildProcess>();
let hostValues: Record<string, string> = {};

const knobs = (): Record<string, string> => readKnobs(ALL_KNOBS);
const same = (a: Record<string, string>, b: Record<string, string>): boolean => JSON.stringify(a) === JSON.stringify(b);
const log = (message: string): void => {
  process.stderr.write(`[ksm guard e2e] ${message}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Settings unlike the host's in every knob a session writes; slow scanning: this is about settings. */
function settingsUnlike(current: Record<string, string>): KsmSettings {
  return {
    pagesToScan: current.pages_to_scan === '137' ? 138 : 137,
    sleepMillisecs: current.sleep_millisecs === '200' ? 250 : 200,
    useZeroPages: current.use_zero_pages !== '1',
    smartScan: current.smart_scan !== '1',
    advisorMode: 'none',
  };
}

async function startHolder(settings: KsmSettings): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(settings)], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
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

/** Poll `check` every 1 ms until it holds or `timeoutMs` passed; returns the ms it took (Infinity: never). */
async function within(timeoutMs: number, check: () => boolean): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) return Number.POSITIVE_INFINITY;
    await sleep(1);
  }
}

let releaseLock: () => void = () => undefined;
beforeAll(async () => {
  if (!usable) return;
  releaseLock = await takeKsmTestLock(); // test files that use KSM take turns (it is host-wide)
  const hostState = path.join(KSM_STATE_DIR, 'ksm-state.json');
  const holder = readStateFile(hostState);
  if (holder) throw new Error(`${hostState} exists (xme process ${holder.owner.pid} holds KSM): run these tests when no xme run uses KSM`);
  takeKsmGuardReports(); // none of an earlier test's
  hostValues = knobs();
  log(`host's knobs before: ${JSON.stringify(hostValues)}`);
}, 1_000_000);

afterAll(async () => {
  if (!usable) return;
  for (const child of children) {
    process.kill(child.pid!, 'SIGKILL');
    await exitOf(child);
  }
  await sleep(500); // their guards restore
  recoverAbandonedKsmState((message) => log(`afterAll: ${message}`));
  takeKsmGuardReports();
  const problems = restoreKnobs(Object.fromEntries(CHANGED_KNOBS.map((knob) => [knob, hostValues[knob]!]).filter(([, v]) => v !== undefined)));
  releaseLock();
  fs.rmSync(process.env.XME_KSM_STATE_DIR!, { recursive: true, force: true });
  expect(problems).toEqual([]);
  expect(knobs()).toEqual(hostValues);
}, 60_000);

describe('KSM guard on the real kernel', () => {
  if (!usable) log(`skipped: ${why}`);

  it.skipIf(!usable)(
    `restores every knob within 2 s of the holder's SIGKILL, without another run (${TRIALS} trials)`,
    async () => {
      const timings: string[] = [];
      for (let trial = 1; trial <= TRIALS; trial++) {
        const before = knobs();
        const settings = settingsUnlike(before);
        const holder = await startHolder(settings);
        const guardPid = readStateFile()?.guard?.pid;
        expect(guardPid).toBeTypeOf('number');
        expect(knobs()).not.toEqual(before);
        expect(knobs().run).toBe('1');

        holder.kill('SIGKILL');
        const ms = await within(2000, () => same(knobs(), before));
        expect(knobs()).toEqual(before);
        expect(ms).toBeLessThan(2000);
        expect(await exitOf(holder)).toEqual({ code: null, signal: 'SIGKILL' });
        expect(await within(2000, () => !processAlive(guardPid!))).toBeLessThan(2000);
        expect(fs.existsSync(ksmStateFile())).toBe(false);

        const reports = takeKsmGuardReports();
        expect(reports.map((r) => [r.owner.pid, r.guardPid, r.problems])).toEqual([[holder.pid, guardPid, []]]);
        const report = reports[0]!;
        expect(report.found.run).toBe('1');
        expect(report.restored).toEqual(
          Object.fromEntries(Object.entries(before).filter(([knob, value]) => CHANGED_KNOBS.includes(knob as never) && report.found[knob] !== value)),
        );
        const guardMs = Date.parse(report.restoredAt) - Date.parse(report.noticedAt);
        timings.push(
          `trial ${trial}: knobs back ${ms.toFixed(1)} ms after kill() (guard: noticed by ${report.noticedBy}, restored ${guardMs} ms after noticing)`,
        );
      }
      for (const line of timings) log(line);
    },
    300_000,
  );

  it.skipIf(!usable)(
    'after SIGINT the holder restores itself; its guard ends touching nothing and leaves no report',
    async () => {
      takeKsmGuardReports(); // none left by a failed trial above
      const before = knobs();
      const holder = await startHolder(settingsUnlike(before));
      const guardPid = readStateFile()?.guard?.pid;
      expect(guardPid).toBeTypeOf('number');
      holder.kill('SIGINT');
      expect(await exitOf(holder)).toEqual({ code: 130, signal: null });
      expect(knobs()).toEqual(before);
      expect(await within(2000, () => !processAlive(guardPid!))).toBeLessThan(2000);
      expect(fs.existsSync(ksmStateFile())).toBe(false);
      expect(takeKsmGuardReports()).toEqual([]);
      expect(knobs()).toEqual(before);
    },
    90_000,
  );
});
