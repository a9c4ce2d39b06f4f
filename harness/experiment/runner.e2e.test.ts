/**
 * `xme run` end to end on real guests: the smoke scenario's CSV numbers make sense; a System.map of another
 * kernel build is refused and nothing is shared by the semantic strategy; KASLR lowers kernel-code
 * shareability and the figure is still computed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunOutcome } from './runner.ts';
import { runWithOutputs } from '../cli/run-outputs.ts';
import { loadScenario, withOverrides } from '../scenario/scenario.ts';
import { defaultImage } from '../testing/e2e.ts';
import { otherSystemMap } from '../images/other-kernels.ts';
import type { GuestImage } from '../images/manifest.ts';

type Row = Record<string, string>;

const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-results-test-'));
let image: GuestImage;

function readCsv(file: string): Row[] {
  return parse(fs.readFileSync(file), { columns: true, skip_empty_lines: true }) as Row[];
}

function summaryValue(rows: Row[], strategy: string, metric: string): number {
  const row = rows.find((r) => r.strategy === strategy && r.metric === metric);
  if (!row) throw new Error(`no ${metric} for ${strategy} in summary.csv`);
  return Number(row.mean);
}

beforeAll(async () => {
  image = await defaultImage();
});
afterAll(() => fs.rmSync(resultsRoot, { recursive: true, force: true }));

describe('xme run — smoke scenario', () => {
  let outcome: RunOutcome;
  let samples: Row[];
  let summary: Row[];

  beforeAll(async () => {
    outcome = await runWithOutputs({ scenario: loadScenario('smoke'), resultsRoot });
    samples = readCsv(path.join(outcome.dir, 'samples.csv'));
    summary = readCsv(path.join(outcome.dir, 'summary.csv'));
  }, 180_000);

  it('completes and records how it ran in run.json', () => {
    expect(outcome.status).toBe('completed');
    const record = JSON.parse(fs.readFileSync(path.join(outcome.dir, 'run.json'), 'utf8'));
    expect(record.status).toBe('completed');
    expect(record.backend.version).toMatch(/^QEMU \d+\.\d+/);
    expect(['tcg', 'kvm']).toContain(record.backend.accelerator);
    expect(record.image.files.systemMap.sha256).toBe(image.manifest.files.systemMap.sha256);
    expect(record.image.kernel.version).toBe(image.manifest.kernel.version);
    expect(record.harness.gitCommit).toMatch(/^[0-9a-f]{40}$|^unknown/);
    expect(record.cowMethod).toMatch(/content-reread/);
    expect(Date.parse(record.endedAt)).toBeGreaterThan(Date.parse(record.startedAt));
    expect(fs.readdirSync(path.join(outcome.dir, 'logs', 'm128-r1')).sort()).toEqual(['g0.serial.log', 'g1.serial.log']);
  });

  it('writes one row per tick × strategy × (all, each guest), with sane numbers', () => {
    const ticks = new Set(samples.map((r) => r.tick));
    expect(ticks.size).toBe(5); // t = 0, 5, 10, 15, 20 s
    expect(samples).toHaveLength(ticks.size * 2 * 3);
    for (const row of samples) {
      expect(Number(row.shared_pages)).toBeLessThanOrEqual(Number(row.guest_pages));
      expect(row.cow_method).toBe('content-reread');
      expect(row.cow_count).toBe('lower bound');
      expect(row.sharing_mode).toBe('accounted');
      expect(row.status).toBe('ok');
      if (row.guest === 'all') {
        expect(Number(row.frames_saved)).toBeLessThanOrEqual(Number(row.shared_pages));
        expect(Number(row.frames_saved)).toBeGreaterThanOrEqual(Number(row.shared_pages) / 2 - 1e-9);
        expect(Number(row.scan_cpu_ms)).toBeGreaterThan(0);
      }
    }
    const perGuestShared = samples.filter((r) => r.guest !== 'all' && r.tick === '4' && r.strategy === 'content');
    const total = samples.find((r) => r.guest === 'all' && r.tick === '4' && r.strategy === 'content')!;
    expect(perGuestShared.reduce((sum, r) => sum + Number(r.shared_pages), 0)).toBe(Number(total.shared_pages));
  });

  it('finds ≥ 99% of kernel code pages shareable between identical nokaslr guests', () => {
    const rows = samples.filter((r) => r.strategy === 'semantic' && r.guest === 'all');
    for (const row of rows) {
      expect(Number(row.kernel_code_identical_pages) / Number(row.kernel_code_pages)).toBeGreaterThanOrEqual(0.99);
      // The semantic strategy reads only kernel code pages: at the first tick 2 guests × the code range; after
      // it only the pages its ledger does not hold as one frame (StrategyContext.sharedOnOneFrame).
      if (row.tick === '0') expect(Number(row.pages_read)).toBe(2 * Number(row.kernel_code_pages));
      else expect(Number(row.pages_read)).toBeLessThanOrEqual(2 * (Number(row.kernel_code_pages) - Number(row.kernel_code_identical_pages)) + 2 * 16);
    }
    expect(summaryValue(summary, 'semantic', 'kernel_code_shareability_pct')).toBeGreaterThanOrEqual(99);
  });

  it('sees CoW faults for content-based sharing under a writing workload, ≈ none for kernel code', () => {
    expect(summaryValue(summary, 'content', 'cow_faults')).toBeGreaterThan(0);
    expect(summaryValue(summary, 'semantic', 'cow_faults')).toBeLessThanOrEqual(2);
  });

  it('measures semantic scanning far cheaper than content scanning, as a ratio from this run', () => {
    const ratio = summaryValue(summary, 'content', 'scan_cpu_ratio_vs_semantic');
    expect(ratio).toBeGreaterThan(2);
    for (const row of summary) {
      expect(row.unit).not.toBe('');
      expect(row.method).not.toBe('');
    }
  });

  it('reports the guests’ workload throughput from their progress lines', () => {
    const rates = samples.filter((r) => r.guest !== 'all' && r.workload_ops_per_s !== '').map((r) => Number(r.workload_ops_per_s));
    expect(rates.length).toBeGreaterThan(0);
    // memchurn paced at 200 pages/s, measured over host time (pauses included): never above its pace (a wrong
    // time unit would show), never nothing; how close to 200 depends on the host's load, so no floor here.
    for (const rate of rates) {
      expect(rate).toBeGreaterThan(0);
      expect(rate).toBeLessThan(200 * 1.15);
    }
  });
});

describe('xme run — a System.map of another kernel build', () => {
  it('is refused with a clear reason and the semantic strategy shares nothing', async () => {
    const other = await otherSystemMap('cloud-amd64', image.manifest.kernel.package);
    const scenario = withOverrides(loadScenario('smoke'), { durationS: 5, tickS: 5, systemMap: other.file });
    const outcome = await runWithOutputs({ scenario, resultsRoot });
    const samples = readCsv(path.join(outcome.dir, 'samples.csv'));
    const semantic = samples.filter((r) => r.strategy === 'semantic');
    expect(semantic.length).toBeGreaterThan(0);
    for (const row of semantic) {
      expect(row.shared_pages).toBe('0');
      expect(row.status).toMatch(/^refused: System.map does not match the kernel running in guest g\d: the kernel's own symbol table \(kallsyms\) disagrees/);
    }
    const summary = readCsv(path.join(outcome.dir, 'summary.csv'));
    expect(summaryValue(summary, 'semantic', 'refused_scans')).toBe(2);
    expect(summaryValue(summary, 'content', 'shared_pages')).toBeGreaterThan(0); // content-based needs no System.map
  }, 180_000);
});

describe('xme run — KASLR on', () => {
  it('computes a lower kernel-code shareability, from both guests’ own placements', async () => {
    const scenario = withOverrides(loadScenario('thesis-kernel-code'), { kaslr: true, guests: [2], memoryMiB: [128], durationS: 2, tickS: 2 });
    const outcome = await runWithOutputs({ scenario, resultsRoot });
    const record = JSON.parse(fs.readFileSync(path.join(outcome.dir, 'run.json'), 'utf8'));
    const offsets = (record.notes as string[])
      .filter((n) => n.startsWith('semantic (') && /KASLR offset/.test(n))
      .map((n) => /KASLR offset (0x[0-9a-f]+)/.exec(n)![1]);
    expect(offsets).toHaveLength(2);
    const summary = readCsv(path.join(outcome.dir, 'summary.csv'));
    const shareability = summaryValue(summary, 'semantic', 'kernel_code_shareability_pct');
    expect(shareability).toBeGreaterThan(0);
    // Two guests that drew the same virtual slide would legitimately share all code: only then may it be 100%.
    if (offsets[0] !== offsets[1]) expect(shareability).toBeLessThan(99);
  }, 180_000);
});

describe('xme run — CPU is the scan’s own', () => {
  // Tried once more if it fails: the scans compared are under a millisecond of thread CPU a tick, and in a full
  // npm test on 2 cores the guests other files boot beside it once slowed the larger one's ticks more than half
  // the time (median ratio 0.93 against 1.09–1.10 in every other run, alone or in full runs). A billing that is
  // wrong fails both tries.
  it('bills a scan that reads more pages more CPU, in one run (semantic code only vs code + rodata)', { timeout: 180_000, retry: 1 }, async () => {
    // KASLR on: about 70% of kernel code and half of rodata differ between the guests and are compared every
    // tick (the pages already one frame are not: StrategyContext.sharedOnOneFrame), so steady-state ticks read.
    const scenario = withOverrides(loadScenario('thesis-kernel-code'), { guests: [2], memoryMiB: [128], durationS: 12, tickS: 1, kaslr: true });
    const outcome = await runWithOutputs({ scenario, resultsRoot });
    const samples = readCsv(path.join(outcome.dir, 'samples.csv'));
    const totals = samples.filter((r) => r.guest === 'all' && r.tick !== '0'); // steady state: the first scan locates kernels
    const at = (strategy: string, tick: string) => totals.find((r) => r.strategy === strategy && r.tick === tick)!;
    if (Number(at('semantic', '1').pages_read) === 0) {
      // Both guests drew the same KASLR slide (≈ 1 in 500): all code is one frame after tick 0, nothing is read.
      process.stdout.write('CPU-RATIO skipped: both guests drew the same KASLR slide\n');
      expect(Number(at('semantic', '1').kernel_code_identical_pages)).toBe(Number(at('semantic', '1').kernel_code_pages));
      return;
    }
    const pagesRatio = Number(at('semantic+rodata', '1').pages_read) / Number(at('semantic', '1').pages_read);
    expect(pagesRatio).toBeGreaterThan(1.05);
    // Per tick, both strategies scored the same guests back to back: the median of the per-tick ratios is
    // robust to a tick in which another process (a parallel test booting guests) disturbed one of them.
    const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const ticks = [...new Set(totals.map((r) => r.tick!))];
    const ratioOf = (column: string) => median(ticks.map((tick) => Number(at('semantic+rodata', tick)[column]) / Number(at('semantic', tick)[column])));
    const scanRatio = ratioOf('scan_cpu_ms');
    const tickRatio = ratioOf('tick_cpu_ms');
    process.stdout.write(
      `CPU-RATIO ${JSON.stringify({ pages_ratio: pagesRatio, median_scan_cpu_ratio: scanRatio, median_tick_cpu_ratio: tickRatio, ticks: ticks.length })}\n`,
    );
    // Clearly more CPU for more pages (process-wide CPU once gave 0.7× here); a scan also has a fixed part
    // per tick, so the CPU ratio stays below the pages ratio.
    expect(scanRatio).toBeGreaterThan(1 + (pagesRatio - 1) / 4);
    expect(tickRatio).toBeGreaterThan(1 + (pagesRatio - 1) / 4);
    for (const row of samples) if (row.guest === 'all') expect(row.cpu_method).toMatch(/CLOCK_THREAD_CPUTIME_ID/);
    // The strategy order rotates: samples.csv rows come in scoring order, so every strategy opened some tick.
    const firstPerTick = new Set([...new Set(samples.map((r) => r.tick))].map((tick) => samples.find((r) => r.tick === tick)!.strategy));
    expect(firstPerTick.size).toBe(3);
  });
});
