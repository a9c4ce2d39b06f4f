/**
 * The composition's per-fault CoW cost (cowFaultCostsFor): who measures, what run.json gets, and the warnings
 * where a run needs a cost it cannot have. No KSM is touched: the cache is a temporary folder, and where a run
 * would measure, the KSM directory is one that does not exist.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseScenario } from '../scenario/scenario.ts';
import { fakeBackendFactory } from '../testing/fake-backend.ts';
import { XEN_UNSHARE_COST_SLOT } from '../sharing/enforced-ledger.ts';
import type { MeasuredCowFaultCost } from '../host/cow-break.ts';
import { cowFaultCostsFor } from './run-outputs.ts';

let dir: string;
const saved = { cache: process.env.XME_CACHE, sysfs: process.env.XME_KSM_SYSFS };
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-run-outputs-'));
  process.env.XME_CACHE = path.join(dir, 'cache');
  process.env.XME_KSM_SYSFS = path.join(dir, 'no-ksm');
});
afterEach(() => {
  for (const [name, value] of [
    ['XME_CACHE', saved.cache],
    ['XME_KSM_SYSFS', saved.sysfs],
  ] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  fs.rmSync(dir, { recursive: true, force: true });
});

const scenario = (backend: 'qemu' | 'xen' = 'qemu') =>
  parseScenario({ name: 's', backend, guests: 2, memoryMiB: 64, durationS: 1, tickS: 1, strategies: ['semantic'] });
const said: string[] = [];
const say = (line: string) => said.push(line);

describe('the per-fault CoW cost of a run', () => {
  it('is measured for the scenario’s own QEMU guests; where it cannot be, a warning says why and nothing is made up', async () => {
    const { costs, warnings } = await cowFaultCostsFor({ scenario: scenario() }, say);
    expect(costs['linux-ksm-cow-break']).toEqual({ status: 'not measured', reason: expect.stringMatching(/^KSM cannot be used: this kernel has no KSM/) });
    expect(costs['xen-unshare']).toEqual(XEN_UNSHARE_COST_SLOT);
    expect(warnings).toEqual([
      expect.stringMatching(
        /^the cost of a CoW fault could not be measured on this host \(KSM cannot be used: .*\): cow_model_cpu_ms is empty and mechanism_cpu_ms leaves out the CoW handling$/,
      ),
    ]);
  });

  it('is not measured for stand-in guests (a test, a replay): a cached value only, and no warning', async () => {
    const { costs, warnings } = await cowFaultCostsFor({ scenario: scenario(), backendFactory: fakeBackendFactory() }, say);
    expect(costs['linux-ksm-cow-break']).toEqual({ status: 'not measured', reason: expect.stringContaining('this run does not measure') });
    expect(warnings).toEqual([]);
  });

  it('takes a cost it is given as it is', async () => {
    const given = { status: 'measured', value: 2200, unit: 'ns CPU per CoW fault' } as MeasuredCowFaultCost;
    const { costs, warnings } = await cowFaultCostsFor({ scenario: scenario(), cowFaultCost: given }, say);
    expect(costs['linux-ksm-cow-break']).toBe(given);
    expect(warnings).toEqual([]);
  });

  it('on Xen says that the unshare cost is a slot not yet measured', async () => {
    const { warnings } = await cowFaultCostsFor({ scenario: scenario('xen') }, say);
    expect(warnings).toEqual([`${XEN_UNSHARE_COST_SLOT.reason}: cow_model_cpu_ms is empty and mechanism_cpu_ms leaves out the CoW handling`]);
  });
});
