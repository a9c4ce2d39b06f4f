/**
 * The cost of one CoW fault on the real kernel (root, /sys/kernel/mm/ksm writable; without them the tests are
 * skipped, and say so): the selftest's method (ksm_tests.c -C) in native/cow-break.c, KSM held through a
 * KsmSession. A write to a merged page must cost more than the same write to an unmerged one, the kernel must
 * count one break per such write, and every knob must be back as it was. Then the per-boot cache: measured
 * once, read after. The KSM test lock is held throughout (KSM is host-wide; test files take turns).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { takeKsmTestLock } from '../testing/ksm-test-lock.ts';
import { cowBreakCacheFile, hostCowBreakCost, measureCowBreak } from './cow-break.ts';
import { CHANGED_KNOBS, ksmAvailable, readKnobs, RECORDED_KNOBS } from './ksm-knobs.ts';
import { readStateFile } from './ksm-state.ts';

// The real knobs and the real state directory, whatever the environment says.
delete process.env.XME_KSM_SYSFS;
delete process.env.XME_KSM_STATE_DIR;

const available = ksmAvailable();
const usable = process.getuid?.() === 0 && available.ok;
const why = process.getuid?.() !== 0 ? 'not root' : available.ok ? '' : available.why;
const log = (message: string) => process.stderr.write(`[cow-break e2e] ${message}\n`);
const knobs = () => readKnobs([...CHANGED_KNOBS, ...RECORDED_KNOBS]);

let releaseLock: () => void = () => undefined;
let cache: string;
const savedCache = process.env.XME_CACHE;
beforeAll(async () => {
  if (!usable) return;
  releaseLock = await takeKsmTestLock();
  const holder = readStateFile();
  if (holder) throw new Error(`xme process ${holder.owner.pid} holds KSM: run these tests when no xme run uses KSM`);
  // A cache of its own, so that this test measures, and leaves the host's cache alone.
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-cow-break-e2e-'));
  process.env.XME_CACHE = cache;
}, 1_000_000);

afterAll(() => {
  if (!usable) return;
  releaseLock();
  if (savedCache === undefined) delete process.env.XME_CACHE;
  else process.env.XME_CACHE = savedCache;
  fs.rmSync(cache, { recursive: true, force: true });
});

describe('the cost of a CoW fault on the real kernel', () => {
  if (!usable) log(`skipped: ${why}`);

  it.skipIf(!usable)(
    'a write to a merged page costs more than to an unmerged one; one break each, counted by the kernel; every knob restored',
    async () => {
      const before = knobs();
      const measured = await measureCowBreak({ trials: 3 });
      expect(knobs()).toEqual(before);
      expect(readStateFile()).toBeUndefined();
      for (const trial of measured.trials) {
        log(
          `trial: merged ${trial.mergedCpuNsPerPage.toFixed(0)} ns CPU per write, unmerged ${trial.unmergedCpuNsPerPage.toFixed(0)} ns: ${(trial.cpuNsPerFault / 1000).toFixed(2)} µs per break (wall ${(trial.wallNsPerFault / 1000).toFixed(2)} µs); ${trial.fullScans} full scans in ${trial.waitMs} ms; cow_ksm +${trial.kernelBreaks}; load ${os.loadavg()[0]!.toFixed(2)}`,
        );
        expect(trial.mergedCpuNsPerPage).toBeGreaterThan(trial.unmergedCpuNsPerPage);
        expect(trial.fullScans).toBeGreaterThanOrEqual(2);
        if (trial.kernelBreaks >= 0) expect(trial.kernelBreaks).toBeGreaterThanOrEqual(trial.pairs);
      }
      expect(measured).toMatchObject({ status: 'measured', unit: 'ns CPU per CoW fault', host: { kernelRelease: os.release() } });
      expect(measured.value).toBeGreaterThan(0);
      // Wall time too, but over the trials: each timed loop lasts a few milliseconds, so on a shared host one
      // preemption inside a loop (not the CPU clock, which stops with the thread) can invert a single trial.
      expect(measured.wallNsPerFault).toBeGreaterThan(0);
      // A break allocates and copies a page: far more than a store, far less than a millisecond.
      expect(measured.value).toBeLessThan(1_000_000);
      log(`per fault: ${(measured.value / 1000).toFixed(2)} µs CPU (median of 3), ${(measured.wallNsPerFault / 1000).toFixed(2)} µs wall`);
    },
    120_000,
  );

  it.skipIf(!usable)(
    'is measured once per boot and then read from the cache',
    async () => {
      const first = await hostCowBreakCost({ measure: true, trials: 1 });
      expect(first).toMatchObject({ status: 'measured', source: 'measured for this run' });
      expect(fs.existsSync(cowBreakCacheFile())).toBe(true);
      const second = await hostCowBreakCost({ measure: true, trials: 1 });
      expect(second).toMatchObject({ status: 'measured', value: first.status === 'measured' ? first.value : Number.NaN });
      expect(second.status === 'measured' && second.source).toMatch(/^cache: /);
    },
    120_000,
  );
});
