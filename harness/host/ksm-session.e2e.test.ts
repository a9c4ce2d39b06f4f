/**
 * KsmSession against the real /sys/kernel/mm/ksm (root; the fake-directory tests are ksm-session.test.ts).
 * A child process holds KSM with settings unlike the host's; after SIGINT, SIGTERM or SIGHUP every knob is
 * back as it was, and after SIGKILL of a holder without a guard process (as if the guard died too) the knobs
 * stay changed until recoverAbandonedKsmState() puts them back. The guard itself: ksm-guard.e2e.test.ts.
 * Every case reads all knobs before and compares after; afterAll puts the host's values back whatever
 * happened. KSM is on for a second or two per case: ksmd scans every mergeable process on the host.
 */
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.ts';
import { processAlive } from '../util/process.ts';
import { KsmSession, ksmAvailable, readKsmCounters, readProcessKsmStat, recoverAbandonedKsmState, type KsmSettings } from './ksm.ts';
import { CHANGED_KNOBS, KSM_SYSFS_DIR, readKnob, readKnobs, RECORDED_KNOBS, writeKnob } from './ksm-knobs.ts';
import { restoreKnobs } from './ksm-apply.ts';
import { readProcessKsmStatLines } from './ksm-counters.ts';
import { KSM_STATE_DIR, ksmStateFile, readStateFile } from './ksm-state.ts';
import { MergeableMemory } from './testing/mergeable-memory.ts';
import { takeKsmTestLock } from '../testing/ksm-test-lock.ts';

// The real knobs and the real state directory, whatever the environment says.
delete process.env.XME_KSM_SYSFS;
delete process.env.XME_KSM_STATE_DIR;

const CHILD = path.join(projectRoot, 'harness', 'host', 'testing', 'ksm-session-child.ts');
const ALL_KNOBS = [...CHANGED_KNOBS, ...RECORDED_KNOBS];
const children = new Set<ChildProcess>();
let hostValues: Record<string, string> = {};

const knobs = (): Record<string, string> => readKnobs(ALL_KNOBS);
const log = (message: string): void => {
  process.stderr.write(`[ksm e2e] ${message}\n`);
};

/** Settings unlike the host's current ones in every knob a session writes (advisor: 'none'). */
function settingsUnlike(current: Record<string, string>): KsmSettings {
  return {
    pagesToScan: current.pages_to_scan === '137' ? 138 : 137,
    sleepMillisecs: current.sleep_millisecs === '200' ? 250 : 200, // slow: this is about settings, not scanning
    useZeroPages: current.use_zero_pages !== '1',
    smartScan: current.smart_scan !== '1',
    advisorMode: 'none',
  };
}

/** Start the fixture holding KSM with `settings`; resolves once it printed READY. */
async function startHolder(settings: KsmSettings, mode: 'wait' | 'throw' | 'no-guard' = 'wait'): Promise<{ child: ChildProcess; stderr: () => string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, JSON.stringify(settings), mode], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
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
  return { child, stderr: () => stderr };
}

async function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return { code, signal };
}

/** What the knobs read while a session with `settings` holds KSM (with advisor 'scan-time' pages_to_scan is the advisor's, not this). */
function expectedWhileHeld(before: Record<string, string>, settings: KsmSettings): Record<string, string> {
  return {
    ...before,
    run: '1',
    advisor_mode: settings.advisorMode,
    pages_to_scan: String(settings.pagesToScan),
    sleep_millisecs: String(settings.sleepMillisecs),
    use_zero_pages: settings.useZeroPages ? '1' : '0',
    smart_scan: settings.smartScan ? '1' : '0',
  };
}

let releaseLock: () => void = () => undefined;
beforeAll(async () => {
  releaseLock = await takeKsmTestLock(); // test files that use KSM take turns (it is host-wide)
  const available = ksmAvailable();
  if (!available.ok) throw new Error(`these tests need KSM: ${available.why} — ${available.fix}`);
  const holder = readStateFile();
  if (holder) throw new Error(`${ksmStateFile()} exists (xme process ${holder.owner.pid} holds KSM): run these tests when no xme run uses KSM`);
  hostValues = knobs();
  log(`host's knobs before: ${JSON.stringify(hostValues)}`);
}, 1_000_000);

/** Ends the holders still running (SIGTERM, which restores their knobs; SIGKILL after 10 s), by PID. */
async function stopHolders(): Promise<void> {
  for (const child of children) {
    process.kill(child.pid!, 'SIGTERM');
    await Promise.race([exitOf(child), new Promise((resolve) => setTimeout(resolve, 10_000))]);
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
  }
}

// A case that failed before it ended its holder must not leave it holding KSM for the next cases (they would be
// refused "KSM is in use" and fail for that alone).
afterEach(stopHolders, 30_000);

afterAll(async () => {
  // Whatever failed: no holder left running, nothing abandoned, the host's values back.
  await stopHolders();
  recoverAbandonedKsmState((message) => log(`afterAll: ${message}`));
  const problems = restoreKnobs(Object.fromEntries(CHANGED_KNOBS.map((knob) => [knob, hostValues[knob]!]).filter(([, v]) => v !== undefined)));
  releaseLock();
  expect(problems).toEqual([]);
  expect(knobs()).toEqual(hostValues);
}, 60_000);

describe('KSM session on the real kernel', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const)(
    'restores every knob when the holder gets %s',
    async (signal, status) => {
      const before = knobs();
      const settings = settingsUnlike(before);
      const { child, stderr } = await startHolder(settings);
      expect(knobs()).toEqual(expectedWhileHeld(before, settings));
      expect(readStateFile()?.owner.pid).toBe(child.pid);

      child.kill(signal);
      expect(await exitOf(child)).toEqual({ code: status, signal: null });
      expect(knobs()).toEqual(before);
      expect(fs.existsSync(ksmStateFile())).toBe(false);
      expect(stderr()).toContain(`${signal} received`);
    },
    90_000,
  );

  it('restores every knob when the holder dies of an uncaught exception (the synchronous exit path)', async () => {
    const before = knobs();
    const settings = settingsUnlike(before);
    const { child, stderr } = await startHolder(settings, 'throw');
    const exit = await exitOf(child);
    expect(stderr()).toContain('fixture: an uncaught exception while holding KSM');
    expect(exit).toEqual({ code: 1, signal: null });
    expect(knobs()).toEqual(before);
    expect(fs.existsSync(ksmStateFile())).toBe(false);
  }, 90_000);

  it('restores the advisor and then pages_to_scan when the holder gets SIGHUP (advisor_mode scan-time)', async () => {
    const host = knobs();
    // A pages_to_scan unlike the kernel's default (100), so that restoring it before the advisor (whose
    // switch back to "none" resets pages_to_scan to 100) would show. Only possible with the advisor off.
    if (host.advisor_mode === 'none') writeKnob('pages_to_scan', host.pages_to_scan === '123' ? '124' : '123');
    try {
      const before = knobs();
      const settings: KsmSettings = { ...settingsUnlike(before), advisorMode: 'scan-time' };
      const { child } = await startHolder(settings);
      const held = knobs();
      expect({ ...held, pages_to_scan: "the advisor's" }).toEqual({ ...expectedWhileHeld(before, settings), pages_to_scan: "the advisor's" });
      // The switch to scan-time reset pages_to_scan to advisor_min_pages_to_scan (the kernel's doing); the
      // advisor may have tuned it since, within its bounds.
      const pagesToScan = Number(held.pages_to_scan);
      log(`with advisor_mode scan-time: pages_to_scan ${pagesToScan} (advisor_min_pages_to_scan ${readKnob('advisor_min_pages_to_scan')})`);
      expect(pagesToScan).toBeGreaterThanOrEqual(Number(readKnob('advisor_min_pages_to_scan')));
      expect(pagesToScan).toBeLessThanOrEqual(Number(readKnob('advisor_max_pages_to_scan')));
      child.kill('SIGHUP');
      expect(await exitOf(child)).toEqual({ code: 129, signal: null });
      expect(knobs()).toEqual(before);
      expect(fs.existsSync(ksmStateFile())).toBe(false);
    } finally {
      if (readKnob('advisor_mode') === 'none') writeKnob('pages_to_scan', host.pages_to_scan!);
    }
    expect(knobs()).toEqual(host);
  }, 90_000);

  it('after SIGKILL (with no guard process) the knobs stay changed, and recoverAbandonedKsmState puts them back', async () => {
    const before = knobs();
    const settings = settingsUnlike(before);
    const { child } = await startHolder(settings, 'no-guard');
    const pid = child.pid!;
    child.kill('SIGKILL');
    expect(await exitOf(child)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(processAlive(pid)).toBe(false);

    // Nothing ran in the holder: its settings are still in place, and its state file names it.
    expect(knobs()).toEqual(expectedWhileHeld(before, settings));
    const left = readStateFile();
    expect(left?.owner.pid).toBe(pid);
    expect(path.dirname(ksmStateFile())).toBe(KSM_STATE_DIR);

    const notices: string[] = [];
    const restored = recoverAbandonedKsmState((message) => notices.push(message));
    expect(restored).toEqual(Object.fromEntries(CHANGED_KNOBS.map((knob) => [knob, before[knob]])));
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatch(new RegExp(`^restored KSM settings left by xme process ${pid} \\(killed\\?\\): run=${before.run}, `));
    log(notices[0]!);
    expect(knobs()).toEqual(before);
    expect(fs.existsSync(ksmStateFile())).toBe(false);
  }, 90_000);

  it("reads counters while ksmd scans, and ksmd's CPU time grows", async () => {
    const before = knobs();
    // Our own mergeable pages: ksmd has something to scan whatever else runs on the host.
    const memory = MergeableMemory.allocate(2048, 0x5a);
    let start: ReturnType<typeof readKsmCounters>;
    let end: ReturnType<typeof readKsmCounters>;
    let elapsedMs: number;
    let session: KsmSession | undefined;
    try {
      expect(readProcessKsmStatLines(process.pid).ksm_mergeable).toBe('yes');
      session = KsmSession.acquire({
        pagesToScan: 1000, // 50,000 pages/s: well above the default 100, a few % of a CPU
        sleepMillisecs: 20,
        useZeroPages: before.use_zero_pages === '1',
        smartScan: before.smart_scan === '1',
        advisorMode: 'none',
      });
      start = readKsmCounters();
      const t0 = performance.now();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      end = readKsmCounters();
      elapsedMs = performance.now() - t0;
    } finally {
      session?.release();
      memory.free();
    }
    expect(knobs()).toEqual(before);

    for (const [name, value] of Object.entries(end)) {
      expect(Number.isSafeInteger(value), name).toBe(true);
      if (name !== 'generalProfit') expect(value, name).toBeGreaterThanOrEqual(0); // profit is negative while metadata outweighs merges
    }
    const scanned = end.pagesScanned - start.pagesScanned;
    const cpuNs = end.ksmdCpuNs - start.ksmdCpuNs;
    expect(scanned).toBeGreaterThan(0);
    expect(cpuNs).toBeGreaterThan(0);
    const own = readProcessKsmStat(process.pid);
    for (const value of Object.values(own)) expect(Number.isSafeInteger(value)).toBe(true);
    log(
      `${(elapsedMs / 1000).toFixed(2)} s at pages_to_scan 1000 / 20 ms: ksmd scanned ${scanned} pages in ${(cpuNs / 1e6).toFixed(1)} ms CPU ` +
        `(${((scanned / cpuNs) * 1e3).toFixed(2)} M pages per CPU-second), full_scans +${end.fullScans - start.fullScans}, ` +
        `pages_shared ${end.pagesShared}, pages_sharing ${end.pagesSharing}, general_profit ${end.generalProfit}, cow_ksm ${end.cowKsm}; ` +
        `this process: ${JSON.stringify(own)}`,
    );
  }, 60_000);

  it('reads the real KSM directory', () => {
    expect(fs.existsSync(path.join(KSM_SYSFS_DIR, 'run'))).toBe(true);
    expect(process.env.XME_KSM_SYSFS).toBeUndefined();
  });
});
