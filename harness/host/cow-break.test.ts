/**
 * The per-fault CoW cost without the kernel: a trial's figures from the program's output, the cache per boot,
 * and the reasons given where it cannot be measured. On the real kernel (root, KSM): cow-break.e2e.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  cachedCowBreakCost,
  COW_FAULT_COST_UNIT,
  cowBreakCacheFile,
  currentHost,
  hostCowBreakCost,
  type MeasuredCowFaultCost,
  sourceDigest,
  trialOf,
} from './cow-break.ts';

let cache: string;
const saved = { cache: process.env.XME_CACHE, sysfs: process.env.XME_KSM_SYSFS };
beforeEach(() => {
  cache = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-cow-break-'));
  process.env.XME_CACHE = cache;
});
afterEach(() => {
  for (const [name, value] of [
    ['XME_CACHE', saved.cache],
    ['XME_KSM_SYSFS', saved.sysfs],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  fs.rmSync(cache, { recursive: true, force: true });
});

const output = {
  pairs: 2000,
  unmerged_cpu_ns: 60_000,
  unmerged_wall_ns: 70_000,
  merged_cpu_ns: 7_600_000,
  merged_wall_ns: 9_070_000,
  cow_ksm_breaks: 2000,
  merging_pages_before: 4000,
  full_scans_waited: 2,
  wait_ms: 31.5,
};

function stored(more: Partial<MeasuredCowFaultCost> = {}): MeasuredCowFaultCost {
  return {
    status: 'measured',
    value: 3770,
    unit: COW_FAULT_COST_UNIT,
    wallNsPerFault: 4500,
    method: 'test',
    measuredAt: '2026-12-01T23:49:28.334Z',
    host: currentHost(),
    programDigest: sourceDigest(),
    trials: [trialOf(output)],
    source: 'measured for this run',
    ...more,
  };
}

function writeCache(value: unknown): void {
  fs.mkdirSync(path.dirname(cowBreakCacheFile()), { recursive: true });
  fs.writeFileSync(cowBreakCacheFile(), JSON.stringify(value));
}

describe('a CoW-break trial', () => {
  it('is the merged writes less the unmerged ones, per written page', () => {
    expect(trialOf(output)).toEqual({
      pairs: 2000,
      unmergedCpuNsPerPage: 30,
      mergedCpuNsPerPage: 3800,
      unmergedWallNsPerPage: 35,
      mergedWallNsPerPage: 4535,
      cpuNsPerFault: 3770,
      wallNsPerFault: 4500,
      kernelBreaks: 2000,
      fullScans: 2,
      waitMs: 31.5,
    });
  });

  it('is refused when the pages were not all merged, or the kernel counted fewer breaks than writes', () => {
    expect(() => trialOf({ ...output, merging_pages_before: 3000 })).toThrow(/only 3000 of 4000 pages were merged/);
    expect(() => trialOf({ ...output, cow_ksm_breaks: 10 })).toThrow(/counted 10 CoW breaks \(cow_ksm\) for 2000 writes/);
    // A kernel without the counters (−1) is taken at the program's word.
    expect(trialOf({ ...output, merging_pages_before: -1, cow_ksm_breaks: -1 }).cpuNsPerFault).toBe(3770);
  });
});

describe('the per-fault cost of a run', () => {
  it('is read from the cache when it was measured on this boot of this kernel by this program, and says so', async () => {
    writeCache(stored());
    const cached = cachedCowBreakCost();
    expect(cached).toMatchObject({ status: 'measured', value: 3770, unit: 'ns CPU per CoW fault', measuredAt: '2026-12-01T23:49:28.334Z' });
    expect(cached!.source).toBe(`cache: ${cowBreakCacheFile()} (measured 2026-12-01T23:49:28.334Z, this boot)`);
    // measure: true does not measure again (nothing here could: no KSM is touched).
    process.env.XME_KSM_SYSFS = path.join(cache, 'no-ksm');
    expect(await hostCowBreakCost({ measure: true })).toEqual(cached);
  });

  it('is not taken from a cache of another boot, kernel or program, nor from a damaged file', () => {
    const host = currentHost();
    for (const other of [
      stored({ host: { ...host, bootId: 'another-boot' } }),
      stored({ host: { ...host, kernelRelease: '5.10.0-0-amd64' } }),
      stored({ programDigest: '0000000000000000' }),
      stored({ value: Number.NaN }),
      { status: 'not measured', reason: 'x' },
    ]) {
      writeCache(other);
      expect(cachedCowBreakCost()).toBeUndefined();
    }
    fs.writeFileSync(cowBreakCacheFile(), '{ half a file');
    expect(cachedCowBreakCost()).toBeUndefined();
  });

  it('is not measured, with the reason, where the run does not measure or the host has no KSM: never a constant', async () => {
    const cached = await hostCowBreakCost({ measure: false });
    expect(cached).toEqual({ status: 'not measured', reason: expect.stringContaining(`no measurement of this boot in ${cowBreakCacheFile()}`) });
    process.env.XME_KSM_SYSFS = path.join(cache, 'no-ksm');
    const measured = await hostCowBreakCost({ measure: true });
    expect(measured).toEqual({ status: 'not measured', reason: expect.stringMatching(/^KSM cannot be used: this kernel has no KSM/) });
    expect(fs.existsSync(cowBreakCacheFile())).toBe(false); // a failure is not cached: the next run tries again
  });
});
