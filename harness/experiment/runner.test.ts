/**
 * A whole run on in-memory stand-in guests (harness/testing/fake-backend.ts), through the runner's seams
 * (backendFactory, image, writers, stopRequested): the files it leaves for each ending. On real guests:
 * runner.e2e.test.ts and run-interrupt.e2e.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeBackendFactory, fakeImage, fakeKernel, type FakeBackendOptions, type FakeGuest } from '../testing/fake-backend.ts';
import { runWithOutputs, type RunWithOutputsOptions } from '../cli/run-outputs.ts';
import { parseScenario } from '../scenario/scenario.ts';
import { SAMPLE_COLUMNS } from '../results/samples.ts';
import { SUMMARY_COLUMNS } from '../results/summary.ts';
import type { TickSample } from '../results/tick-sample.ts';
import type { RunEnd } from '../results/run.ts';

type Row = Record<string, string>;

const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-runner-test-'));
afterAll(() => fs.rmSync(resultsRoot, { recursive: true, force: true }));

const readCsv = (file: string) => parse(fs.readFileSync(file), { columns: true }) as Row[];
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;

/** Pages 0–3 identical in every guest, the rest each guest's own; g1 writes shared page 2 after tick 0. */
const guests: FakeBackendOptions = {
  memoryPages: 8,
  boot: (guest: FakeGuest, index: number) => {
    for (let gfn = 0; gfn < 8; gfn++) guest.fill(gfn, gfn < 4 ? gfn + 1 : 100 + index * 10 + gfn);
  },
  workload: (guest: FakeGuest, resumes: number) => {
    if (guest.id === 'g1' && resumes === 1) guest.fill(2, 222);
  },
};

function scenario(overrides: Record<string, unknown> = {}) {
  return parseScenario({
    name: 'fake',
    guests: 2,
    memoryMiB: [64, 128],
    repetitions: 2,
    durationS: 0.02,
    tickS: 0.01,
    strategies: ['content', 'semantic'],
    ...overrides,
  });
}

function options(fake: FakeBackendOptions, more: Partial<RunWithOutputsOptions> = {}) {
  const factory = fakeBackendFactory(fake);
  const seen: TickSample[] = [];
  const ends: RunEnd[] = [];
  const run: RunWithOutputsOptions = {
    scenario: scenario(),
    resultsRoot,
    backendFactory: factory,
    image: { image: fakeImage(), kernel: fakeKernel() },
    writers: [{ sample: (s) => seen.push(s), end: (e) => void ends.push(e) }],
    stopRequested: () => false,
    ...more,
  };
  return { run, factory, seen, ends };
}

describe('runner on fake guests', () => {
  it('completes a sweep: samples.csv, summary.csv and run.json as on real guests, every backend closed', async () => {
    const { run, factory, seen, ends } = options(guests, { argv: ['run', '-s', 'fake'] });
    const outcome = await runWithOutputs(run);
    expect(outcome.status).toBe('completed');

    const samples = readCsv(path.join(outcome.dir, 'samples.csv'));
    expect(fs.readFileSync(path.join(outcome.dir, 'samples.csv'), 'utf8').split('\n')[0]).toBe(SAMPLE_COLUMNS.join(','));
    // 2 sizes × 2 repetitions × 3 ticks × 2 strategies × (all + 2 guests)
    expect(samples).toHaveLength(2 * 2 * 3 * 2 * 3);
    expect(seen).toHaveLength(samples.length); // every writer sees every sample, in the same order
    expect(seen.map((s) => s.strategy)).toEqual(samples.map((r) => r.strategy));
    expect(samples.every((r) => r.run_id === outcome.runId && r.scenario === 'fake')).toBe(true);
    const lastContent = samples.filter((r) => r.strategy === 'content' && r.guest === 'all').at(-1)!;
    expect(lastContent).toMatchObject({
      memory_mib: '128',
      repetition: '2',
      tick: '2',
      shared_pages: '7',
      cow_faults_total: '1',
      strategy_metrics: expect.stringMatching(/^zero_pages=0;distinct_hashes=13;scan_threads=1;pass_wall_ms=[0-9.e-]+;scan_worker_cpu_ms=0$/),
    });

    const summary = readCsv(path.join(outcome.dir, 'summary.csv'));
    expect(fs.readFileSync(path.join(outcome.dir, 'summary.csv'), 'utf8').split('\n')[0]).toBe(SUMMARY_COLUMNS.join(','));
    for (const row of summary) {
      expect(Number.isFinite(Number(row.mean))).toBe(true);
      expect(row.unit).not.toBe('');
      expect(row.method).not.toBe('');
    }
    expect(summary.find((r) => r.memory_mib === '64' && r.strategy === 'content' && r.metric === 'cow_faults')).toMatchObject({ n: '2', mean: '1' });
    // A figure the strategy declared, with its declared unit.
    expect(summary.find((r) => r.strategy === 'content' && r.metric === 'distinct_hashes')).toMatchObject({ unit: 'hashes', mean: '13' });
    expect(outcome.summary).toHaveLength(summary.length);

    const record = readJson(path.join(outcome.dir, 'run.json'));
    expect(record).toMatchObject({
      status: 'completed',
      backend: { name: 'fake' },
      sharingMode: expect.stringMatching(/^accounted/),
      cowMethod: expect.stringMatching(/^content-reread/),
      repetitionsCompleted: 8,
      argv: ['run', '-s', 'fake'],
    });
    expect((record.notes as string[]).length).toBe(0);
    expect((record.warnings as string[]).filter((w) => !/came late/.test(w))).toEqual([]); // busy test hosts may delay a tick
    // The report (report-writer.ts), from these files: the figures with data, the kernel one left out (semantic refused).
    const html = fs.readFileSync(path.join(outcome.dir, 'report.html'), 'utf8');
    expect(html).toContain(outcome.runId);
    expect(fs.readdirSync(path.join(outcome.dir, 'figures')).sort()).toEqual(['cow.svg', 'cpu.svg', 'sharing.svg', 'split.svg']);
    expect(html).toMatch(/data-figure="kernel" data-drawn="false"/);
    expect(ends).toHaveLength(1);
    expect(ends[0]!.status).toBe('completed');

    expect(factory.made).toHaveLength(4);
    expect(factory.made.every((backend) => backend.closed)).toBe(true);
    expect(factory.made.map((backend) => backend.provisioned[0]!.memoryMiB)).toEqual([64, 64, 128, 128]);
    expect(factory.made[0]!.backendOptions.keepLogsIn).toBe(path.join(outcome.dir, 'logs', 'm64-r1'));
  });

  it('seals an interrupted run: every row written so far, run.json interrupted, a summary of what was measured', async () => {
    let stop = false;
    const { run, factory, ends } = options(guests, { stopRequested: () => stop });
    run.writers!.push({ sample: (s) => (stop ||= s.tick === 1), end: () => undefined });
    const outcome = await runWithOutputs(run);
    expect(outcome.status).toBe('interrupted');
    const samples = readCsv(path.join(outcome.dir, 'samples.csv'));
    expect([...new Set(samples.map((r) => `${r.memory_mib}/${r.repetition}/${r.tick}`))]).toEqual(['64/1/0', '64/1/1']);
    const record = readJson(path.join(outcome.dir, 'run.json'));
    expect(record.status).toBe('interrupted');
    expect(record.endedAt).toEqual(expect.any(String));
    expect(fs.readFileSync(path.join(outcome.dir, 'report.html'), 'utf8')).toMatch(/<td class="warn">interrupted<\/td>/);
    expect(readCsv(path.join(outcome.dir, 'summary.csv')).length).toBeGreaterThan(0);
    expect(factory.made).toHaveLength(1);
    expect(factory.made[0]!.closed).toBe(true);
    expect(ends.map((e) => e.status)).toEqual(['interrupted']);
  });

  it('fails a run whose guest stopped: the error is thrown, run.json says failed and why, the backend is closed', async () => {
    const { run, factory, ends } = options({ ...guests, workload: (guest) => guest.id === 'g0' && guest.stop() });
    await expect(runWithOutputs(run)).rejects.toThrow('guest g0 stopped during the run');
    const [dir] = fs.readdirSync(resultsRoot).filter((d) => readJson(path.join(resultsRoot, d, 'run.json')).status === 'failed');
    const record = readJson(path.join(resultsRoot, dir!, 'run.json'));
    // The error's hint is kept (errorMessage), not only its message.
    expect(record.warnings).toEqual(["run failed: guest g0 stopped during the run — its serial log is kept in the results' logs/ folder"]);
    expect(readCsv(path.join(resultsRoot, dir!, 'samples.csv')).every((r) => r.tick === '0')).toBe(true);
    expect(factory.made[0]!.closed).toBe(true);
    expect(ends.map((e) => e.status)).toEqual(['failed']);
  });

  it('does not make a results folder when the backend cannot run here', async () => {
    const before = fs.readdirSync(resultsRoot).length;
    const { run } = options(guests);
    const refusing = { ...run, backendFactory: { check: () => Promise.reject(new Error('no Xen here')), create: run.backendFactory!.create } };
    await expect(runWithOutputs(refusing)).rejects.toThrow('no Xen here');
    expect(fs.readdirSync(resultsRoot)).toHaveLength(before);
  });
});
