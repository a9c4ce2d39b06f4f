/**
 * Guests on different CPU models (scenario field cpuModels) on real QEMU: the kernel patches its code at boot
 * for the CPU it finds, so with one kernel and nokaslr fewer code pages are identical than on one model —
 * and the semantic strategy shares only those (the ledger verifies bytes).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultImage } from '../testing/e2e.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { runWithOutputs } from '../cli/run-outputs.ts';

const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-cpu-models-test-'));
beforeAll(async () => {
  await defaultImage();
}, 600_000);
afterAll(() => fs.rmSync(resultsRoot, { recursive: true, force: true }));

describe('guests on different CPU models', () => {
  it('have fewer identical kernel code pages than guests on one model', async () => {
    const scenario = (cpuModels?: string[]) =>
      parseScenario({
        name: 'cpu-models',
        guests: 2,
        memoryMiB: 128,
        workload: { name: 'idle' },
        durationS: 1,
        tickS: 1,
        strategies: ['semantic'],
        ...(cpuModels ? { cpuModels } : {}),
      });
    const shareability = (outcome: Awaited<ReturnType<typeof runWithOutputs>>) =>
      outcome.summary.find((r) => r.strategy === 'semantic' && r.metric === 'kernel_code_shareability_pct')!.mean;
    const same = await runWithOutputs({ scenario: scenario(), resultsRoot });
    const mixed = await runWithOutputs({ scenario: scenario(['qemu64', 'max']), resultsRoot });
    expect(shareability(same)).toBeGreaterThan(99);
    expect(shareability(mixed)).toBeLessThan(95);
    expect(shareability(mixed)).toBeGreaterThan(5);
    // run.json says which models the guests had.
    expect(JSON.parse(fs.readFileSync(path.join(mixed.dir, 'run.json'), 'utf8')).scenario.cpuModels).toEqual(['qemu64', 'max']);
    const shared = (outcome: typeof same) => outcome.summary.find((r) => r.strategy === 'semantic' && r.metric === 'shared_pages')!.mean;
    expect(shared(mixed)).toBeLessThan(shared(same));
  }, 400_000);
});
