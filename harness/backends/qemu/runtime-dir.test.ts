import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { sweepStaleRuntimeDirs } from './runtime-dir.ts';

const base = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-sweep-test-'));
afterAll(() => fs.rmSync(base, { recursive: true, force: true }));

describe('stale runtime directories', () => {
  it('removes directories of xme processes that are gone and keeps live ones and foreign ones', () => {
    // A PID that surely ended: a process that already exited.
    const deadPid = spawnSync('true').pid;
    expect(deadPid).toBeGreaterThan(0);
    const dead = path.join(base, `xme-${deadPid}-abc123`);
    const live = path.join(base, `xme-${process.pid}-def456`);
    const foreign = path.join(base, 'not-xme-1');
    for (const dir of [dead, live, foreign]) fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dead, 'g0.ram'), 'x');
    expect(sweepStaleRuntimeDirs(base)).toEqual([dead]);
    expect(fs.existsSync(dead)).toBe(false);
    expect(fs.existsSync(live)).toBe(true);
    expect(fs.existsSync(foreign)).toBe(true);
  });
});
