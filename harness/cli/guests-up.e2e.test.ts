/**
 * `xme guests up` as a user runs it: boots a real guest, then Ctrl-C (SIGINT) must leave no QEMU process and
 * no guest memory file behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.ts';
import { defaultImage, processRunning } from '../testing/e2e.ts';

beforeAll(async () => {
  await defaultImage();
});

describe('xme guests up', () => {
  it('boots guests, prints their files, and cleans up everything on SIGINT', async () => {
    const child = execa(process.execPath, [path.join(projectRoot, 'bin', 'xme.js'), 'guests', 'up', '--count', '2', '--workload', 'memchurn', '--mib', '8'], {
      reject: false,
    });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const deadline = Date.now() + 90_000;
    while (!/g1 {2}pid \d+[\s\S]*QMP/.test(stdout) && Date.now() < deadline && child.exitCode === null) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const pids = [...stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    const memoryFiles = [...stdout.matchAll(/memory {2}(\S+)/g)].map((m) => m[1]!);
    expect(pids).toHaveLength(2);
    expect(memoryFiles).toHaveLength(2);
    for (const pid of pids) expect(processRunning(pid)).toBe(true);
    for (const file of memoryFiles) expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.dirname(memoryFiles[0]!)).mode & 0o777).toBe(0o700);

    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toMatch(/SIGINT received/);
    for (const pid of pids) expect(processRunning(pid)).toBe(false);
    for (const file of memoryFiles) expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(path.dirname(memoryFiles[0]!))).toBe(false);
  }, 120_000);
});
