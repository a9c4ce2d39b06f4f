/** `xme compare` on the command line, on synthetic results folders (no guest is booted). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { createCli } from './cli.ts';
import { UsageError, XmeError } from '../util/errors.ts';
import { projectRoot } from '../util/paths.ts';
import { writeResultsFolder } from '../testing/results-folder.ts';

const xme = path.join(projectRoot, 'bin', 'xme.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-compare-cli-test-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const a = writeResultsFolder(root, {
  runId: 'run-a',
  rows: [
    { metric: 'shared_pages', n: 5, mean: 10, sd: 2, ci95_low: 7.517, ci95_high: 12.48 },
    { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 100, sd: 1, ci95_low: 99.28, ci95_high: 100.7 },
  ],
});
const b = writeResultsFolder(root, {
  runId: 'run-b',
  status: 'failed',
  rows: [
    { metric: 'shared_pages', n: 6, mean: 12, sd: 3, ci95_low: 8.852, ci95_high: 15.15 },
    { metric: 'scan_cpu_ms', unit: 'ms per scan', n: 10, mean: 110, sd: 2, ci95_low: 108.6, ci95_high: 111.4 },
  ],
});

/** Runs the command in this process; returns what it wrote on stdout and stderr. */
async function run(argv: string[]): Promise<{ stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((stdout += String(chunk)), true));
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((stderr += String(chunk)), true));
  try {
    await createCli(argv).parseAsync();
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
  return { stdout, stderr };
}

describe('xme compare', () => {
  it('prints the console table by default, with the warning for a run that did not complete', async () => {
    const { stdout } = await run(['compare', a, b]);
    expect(stdout).toContain("warning: run run-b is 'failed', not completed");
    expect(stdout).toMatch(/shared_pages +pages +5\/6 +10 \[7\.517, 12\.48\] +12 \[8\.852, 15\.15\] +\+20\.0% +0\.221 +not significant/);
    expect(stdout).toMatch(/scan_cpu_ms +ms per scan +10\/10 .* \+10\.0% +<0\.001 +significant/);
  });

  it('--format csv --metric: only that metric, warnings on stderr', async () => {
    const { stdout, stderr } = await run(['compare', a, b, '--format', 'csv', '--metric', 'scan_cpu_ms']);
    const records = parse(stdout, { columns: true }) as Record<string, string>[];
    expect(records.map((r) => [r.metric, r.difference_pct, r.t, r.verdict])).toEqual([['scan_cpu_ms', '10', '14.1421', 'significant']]);
    expect(stderr).toContain("warning: run run-b is 'failed'");
  });

  it('--format md', async () => {
    const { stdout } = await run(['compare', a, b, '--format', 'md']);
    expect(stdout).toContain('| 256 MiB | semantic | shared_pages | pages | 5/6 | 10 [7.517, 12.48] | 12 [8.852, 15.15] | +20.0% | 0.221 | not significant |');
  });

  it('finds run ids under --results', async () => {
    const { stdout } = await run(['compare', 'run-a', 'run-b', '--results', root, '--metric', 'shared_pages']);
    expect(stdout).toContain('B = run-b (smoke, failed) vs A = run-a (smoke, completed), the baseline');
  });

  it('refuses one run, an unknown format, and a folder that is not a results folder', async () => {
    await expect(run(['compare', a])).rejects.toThrow(UsageError);
    await expect(run(['compare', a])).rejects.toThrow(/at least two results folders/);
    await expect(run(['compare', a, b, '--format', 'xlsx'])).rejects.toThrow(UsageError);
    await expect(run(['compare', a, root])).rejects.toThrow(XmeError);
    await expect(run(['compare', a, root])).rejects.toThrow(`${root} is not a results folder: it has no summary.csv and no run.json`);
  });
});

describe('xme compare as a program', () => {
  // Each spawns node with tsx: seconds on a busy machine.
  it('explains the method in --help', { timeout: 60_000 }, async () => {
    const result = await execa(process.execPath, [xme, 'compare', '--help']);
    expect(result.stdout).toMatch(/Welch’s t-test/);
    expect(result.stdout).toMatch(/Welch–Satterthwaite degrees of freedom, two-sided p/);
    expect(result.stdout).toMatch(/p < 0\.05 \(95%\)/);
    expect(result.stdout).toMatch(/n is the number of repetitions/);
    expect(result.stdout).toMatch(/n < 2: cannot judge/);
  });

  it('prints a one-line error for a folder that is not a results folder, exit status 1', { timeout: 60_000 }, async () => {
    const result = await execa(process.execPath, [xme, 'compare', a, root], { reject: false });
    expect(result.exitCode).toBe(1);
    expect(result.stderr.trim().split('\n')).toEqual([
      `xme: error: ${root} is not a results folder: it has no summary.csv and no run.json — give results folders written by xme run (results/<run-id>/, with summary.csv and run.json)`,
    ]);
  });
});

describe('xme compare names the settings in which the runs differ', () => {
  const alike = { guests: 3, memoryMiB: [256], workload: { name: 'idle' }, durationS: 30, tickS: 5, backend: 'qemu' };
  const settings = (kaslr: boolean, commit: string) => ({
    scenario: { ...alike, kaslr },
    backend: { name: 'qemu', version: 'QEMU 7.2.22', accelerator: 'tcg' },
    harness: { version: '0.1.0', gitCommit: commit, gitDirty: false },
    image: { name: 'cloud', kernelRelease: '6.1.0-57-cloud-amd64', files: { vmlinuz: { sha256: 'ab'.repeat(32) } } },
  });
  const rows = [{ metric: 'shared_pages', n: 3, mean: 10, sd: 1 }];
  const nokaslr = writeResultsFolder(path.join(root, 'settings'), { runId: 'nokaslr', rows, settings: settings(false, 'a'.repeat(40)) });
  const kaslr = writeResultsFolder(path.join(root, 'settings'), { runId: 'kaslr', rows, settings: settings(true, 'b'.repeat(40)) });
  const same = writeResultsFolder(path.join(root, 'settings'), { runId: 'same', rows, settings: settings(false, 'a'.repeat(40)) });

  it('a nokaslr run against a KASLR run says so in the header, with the harness commits that differ too', async () => {
    const { stdout } = await run(['compare', nokaslr, kaslr]);
    expect(stdout).toContain('the runs differ in KASLR, harness commit (R1 = nokaslr, R2 = kaslr):');
    expect(stdout).toContain('  KASLR: R1 off (nokaslr); R2 on');
    expect(stdout).toContain(`  harness commit: R1 ${'a'.repeat(12)}; R2 ${'b'.repeat(12)}`);
  });

  it('says nothing of settings when the runs were made alike', async () => {
    const { stdout } = await run(['compare', nokaslr, same]);
    expect(stdout).not.toContain('the runs differ in');
  });

  it('puts the differences on stderr with --format csv, keeping stdout machine-readable', async () => {
    const { stdout, stderr } = await run(['compare', nokaslr, kaslr, '--format', 'csv']);
    expect(stderr).toContain('the runs differ in KASLR');
    expect(stdout).not.toContain('the runs differ');
  });
});
