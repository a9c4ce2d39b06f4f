/**
 * Ctrl-C during `xme run`: the partial results stay valid (every CSV row complete, run.json "interrupted"),
 * and no QEMU process or guest memory file outlives the run.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { parse } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../util/paths.ts';
import { defaultImage, processRunning, qemuPids } from '../testing/e2e.ts';
import { runtimeBaseDir } from '../util/paths.ts';
import { listRuntimeDirs } from '../backends/qemu/runtime-dir.ts';

const resultsRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-interrupt-test-'));
beforeAll(async () => {
  await defaultImage();
});
afterAll(() => fs.rmSync(resultsRoot, { recursive: true, force: true }));

describe('xme run interrupted', () => {
  it('keeps valid partial results and leaves nothing running', async () => {
    const child = execa(
      process.execPath,
      [path.join(projectRoot, 'bin', 'xme.js'), 'run', '--scenario', 'smoke', '--duration', '60', '--results', resultsRoot],
      { reject: false },
    );
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = Date.now() + 120_000;
    // Two scored ticks (t=0s, then t=5s, or later on a loaded host where a tick comes late).
    const ticksSeen = () => (stderr.match(/ t=\d+s /g) ?? []).length;
    while (ticksSeen() < 2 && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    // This run's guests: QEMU processes whose files are in the runtime directory named after the xme PID
    // (other test files may be booting guests at the same time).
    const ownPrefix = path.join(runtimeBaseDir(), `xme-${child.pid}-`);
    const started = qemuPids(ownPrefix);
    expect(started.length).toBeGreaterThanOrEqual(2);
    child.kill('SIGINT');
    const result = await child;
    expect(result.exitCode).toBe(130);

    for (const pid of started) expect(processRunning(pid)).toBe(false);
    expect(listRuntimeDirs().filter((d) => d.startsWith(ownPrefix))).toEqual([]);

    const [runDir] = fs.readdirSync(resultsRoot).map((d) => path.join(resultsRoot, d));
    const record = JSON.parse(fs.readFileSync(path.join(runDir!, 'run.json'), 'utf8'));
    expect(record.status).toBe('interrupted');
    expect(record.endedAt).toBeDefined();
    const text = fs.readFileSync(path.join(runDir!, 'samples.csv'), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const rows = parse(text, { columns: true }) as Record<string, string>[]; // throws on a torn row
    expect(rows.length).toBeGreaterThanOrEqual(12); // ticks 0 and 5 s × 2 strategies × 3 rows
    expect(fs.existsSync(path.join(runDir!, 'summary.csv'))).toBe(true);
  }, 150_000);
});
