/**
 * A suite sharded on a real (one-node) Slurm cluster: scripts/slurm/local-cluster starts munged (if none
 * answers), slurmctld and slurmd with their config and state in a temp folder; scripts/slurm/submit sends an
 * array of 2 shards of a tiny suite on real QEMU guests (1–2 guests, 128 MiB, 5–6 s) and the merge job with
 * --dependency=afterok. The merged folder must cover exactly the suite's cells (those of an unsharded run:
 * `xme suite list --ids`), each shard's record must carry its Slurm array task, and `xme report` must read it.
 * npm run test:slurm (root; slurm-wlm and munge installed).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.ts';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-slurm-test-'));
const clusterDir = path.join(work, 'cluster');
const results = path.join(work, 'results');
const suiteFile = path.join(work, 'slurm-tiny.json');
const env = { ...process.env, SLURM_CONF: path.join(clusterDir, 'slurm.conf') };
const script = (name: string) => path.join(projectRoot, 'scripts', 'slurm', name);
const xme = path.join(projectRoot, 'bin', 'xme.js');
let started = false;

fs.writeFileSync(
  suiteFile,
  JSON.stringify({
    name: 'slurm-tiny',
    entries: [
      { scenario: 'smoke', guests: 1, memoryMiB: [128], durationS: 6, tickS: 3, repetitions: 2 },
      { scenario: 'thesis-kernel-code', guests: 2, memoryMiB: [128], durationS: 5, tickS: 5 },
    ],
  }),
);

beforeAll(async () => {
  // The jobs inherit the daemons' niceness: guests boot at the test's priority, not above it.
  await execa(script('local-cluster'), ['start', clusterDir], { stdio: 'inherit' });
  started = true;
});

afterAll(async () => {
  if (started) await execa(script('local-cluster'), ['stop', clusterDir], { stdio: 'inherit', reject: false });
  if (!process.env.XME_KEEP_SLURM_TEST) fs.rmSync(work, { recursive: true, force: true });
});

async function jobState(id: string): Promise<string> {
  const { stdout } = await execa('scontrol', ['show', 'job', id], { env, reject: false });
  // The merge after a failed shard: its afterok can never be met (local-cluster cancels it; say so at once).
  if (/Reason=DependencyNeverSatisfied/.test(stdout)) return 'DEPENDENCY_NEVER_SATISFIED (a shard failed)';
  return /JobState=(\S+)/.exec(stdout)?.[1] ?? 'UNKNOWN';
}

async function waitFor(id: string, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const state = await jobState(id);
    if (!['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING'].includes(state)) return state;
    if (Date.now() > deadline) throw new Error(`Slurm job ${id} still ${state} after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

const slurmOutput = () =>
  fs
    .readdirSync(results)
    .filter((f) => f.startsWith('slurm-') && f.endsWith('.out'))
    .map((f) => `== ${f}\n${fs.readFileSync(path.join(results, f), 'utf8').slice(-3000)}`)
    .join('\n');

describe('a suite on a one-node Slurm cluster', () => {
  it('runs 2 shards as an array, merges after them, and the merge covers exactly the unsharded cell set', async () => {
    const t0 = Date.now();
    const submitted = await execa(script('submit'), [suiteFile, '2', results], { env });
    const array = /^array (\d+)$/m.exec(submitted.stdout)?.[1];
    const merge = /^merge (\d+)$/m.exec(submitted.stdout)?.[1];
    expect(array, submitted.stdout).toBeDefined();
    expect(merge, submitted.stdout).toBeDefined();

    const state = await waitFor(merge!, 840_000);
    process.stderr.write(`[slurm] array ${array} + merge ${merge}: ${state} after ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    expect(state, slurmOutput()).toBe('COMPLETED');

    const expected = (await execa(xme, ['suite', 'list', suiteFile, '--ids'])).stdout.trim().split('\n');
    expect(expected).toHaveLength(3);
    const merged = path.join(results, 'merged');
    const suiteJson = JSON.parse(fs.readFileSync(path.join(merged, 'suite.json'), 'utf8')) as {
      cells: { id: string; shard: number }[];
      missing: string[];
      shards: { shard: { index: number; count: number }; slurm?: Record<string, string> }[];
    };
    expect(suiteJson.cells.map((c) => c.id).sort()).toEqual([...expected].sort());
    expect(suiteJson.missing).toEqual([]);
    // Each shard ran as its own array task of the one array job.
    expect(suiteJson.shards.map((s) => [s.shard.index, s.shard.count, s.slurm?.SLURM_ARRAY_TASK_ID, s.slurm?.SLURM_ARRAY_JOB_ID]).sort()).toEqual([
      [0, 2, '0', array],
      [1, 2, '1', array],
    ]);
    expect(new Set(suiteJson.cells.map((c) => c.shard))).toEqual(new Set([0, 1]));

    // summary.csv recomputed over both repetitions of smoke, which ran in different shards.
    const summary = fs.readFileSync(path.join(merged, 'smoke.qemu.kaslr0', 'summary.csv'), 'utf8');
    expect(summary).toMatch(/^smoke,1,128,content,shared_pages,pages,2,/m);
    const kernel = fs.readFileSync(path.join(merged, 'thesis-kernel-code.qemu.kaslr0', 'summary.csv'), 'utf8');
    expect(kernel).toMatch(/^thesis-kernel-code,2,128,semantic,kernel_code_shareability_pct,%[^,]*,1,100,/m);

    // xme report reads the merged folder (each variant a run of the report).
    const report = await execa(xme, ['report', merged]);
    expect(report.stdout).toContain(path.join(merged, 'report.html'));
    const html = fs.readFileSync(path.join(merged, 'report.html'), 'utf8');
    expect(html).toContain('smoke.qemu.kaslr0');
    expect(html).toContain('thesis-kernel-code.qemu.kaslr0');
  });
});
