/**
 * Guest overhead on real guests: with `strategyGuests: "apart"` each strategy gets guests booted for it, in an
 * order that rotates with the repetition, the workload's throughput is measured per strategy over host time,
 * and overhead.csv gives the slowdown against the baseline over repetition pairs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultImage } from '../testing/e2e.ts';
import { takeKsmTestLock } from '../testing/ksm-test-lock.ts';
import { parseScenario, scenariosDir } from '../scenario/scenario.ts';
import { runWithOutputs } from '../cli/run-outputs.ts';

const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-overhead-test-'));
let releaseLock: () => void = () => undefined;
beforeAll(async () => {
  await defaultImage();
  releaseLock = await takeKsmTestLock();
}, 1_000_000);
afterAll(() => {
  releaseLock();
  fs.rmSync(resultsRoot, { recursive: true, force: true });
});

describe('guest-overhead on real guests', () => {
  it('boots guests per strategy in rotated order and reports the slowdown against the baseline', async () => {
    const shipped = JSON.parse(fs.readFileSync(path.join(scenariosDir, 'guest-overhead.json'), 'utf8'));
    const scenario = parseScenario({ ...shipped, guests: 1, warmupS: 2, durationS: 10, tickS: 5, repetitions: 2 });
    const outcome = await runWithOutputs({ scenario, resultsRoot });
    expect(outcome.status).toBe('completed');

    // Each strategy's guests were booted for it (a log folder per repetition × strategy).
    expect(fs.readdirSync(path.join(outcome.dir, 'logs')).sort()).toEqual(['m256-r1-ksm', 'm256-r1-none', 'm256-r2-ksm', 'm256-r2-none']);
    // The order rotates: none first in repetition 1, ksm first in repetition 2.
    const samples = parse(fs.readFileSync(path.join(outcome.dir, 'samples.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    const firstOf = (repetition: string) => samples.find((r) => r.repetition === repetition)!.strategy;
    expect([firstOf('1'), firstOf('2')]).toEqual(['none', 'ksm']);
    // The guests' throughput is there for both, per guest row.
    for (const strategy of ['none', 'ksm']) {
      const rates = samples.filter((r) => r.strategy === strategy && r.guest === 'g0' && r.workload_ops_per_s !== '').map((r) => Number(r.workload_ops_per_s));
      expect(rates.length).toBeGreaterThan(0);
      expect(Math.min(...rates)).toBeGreaterThan(0);
    }

    const rows = parse(fs.readFileSync(path.join(outcome.dir, 'overhead.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    expect(rows).toHaveLength(1);
    const row = rows[0]!;
    expect(row).toMatchObject({ strategy: 'ksm', baseline: 'none', n: '2', memory_mib: '256' });
    const slowdown = Number(row.slowdown_pct);
    const base = Number(row.baseline_ops_per_s);
    const ops = Number(row.ops_per_s);
    expect(base).toBeGreaterThan(0);
    // The mean over repetition pairs of each pair's slowdown, from the repetitions this run measured.
    const opsOf = (strategy: string, repetition: number) =>
      outcome.repetitions.find((r) => r.strategy === strategy && r.repetition === repetition)!.values.workload_ops_per_s!;
    const pairs = [1, 2].map((r) => 100 * (1 - opsOf('ksm', r) / opsOf('none', r)));
    expect(slowdown).toBeCloseTo((pairs[0]! + pairs[1]!) / 2, 3);
    expect(ops).toBeGreaterThan(0);
    expect(Number(row.ci95_low)).toBeLessThanOrEqual(slowdown);
    expect(Number(row.ci95_high)).toBeGreaterThanOrEqual(slowdown);
    expect(row.method).toMatch(/host time/);
  }, 600_000);
});
