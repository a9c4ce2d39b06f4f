import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { afterAll, describe, expect, it } from 'vitest';
import { createRuntimeDir, removeRuntimeDir, sweepStaleRuntimeDirs } from './runtime-dir.ts';
import { projectRoot } from '../../util/paths.ts';

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

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function gone(dir: string, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(20)) if (!fs.existsSync(dir)) return true;
  return !fs.existsSync(dir);
}

describe('the runtime directory remover', () => {
  it('removes the directory, guest RAM file and all, when the process that made it is SIGKILLed', async () => {
    const module = path.join(projectRoot, 'harness', 'backends', 'qemu', 'runtime-dir.ts');
    const code = `const { createRuntimeDir } = await import(${JSON.stringify(module)}); const dir = createRuntimeDir(); (await import('node:fs')).writeFileSync(dir + '/g0.ram', 'x'); console.log(dir); setInterval(() => {}, 60000);`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout!, 'data')) as [Buffer];
    const dir = line.toString().trim();
    expect(fs.existsSync(path.join(dir, 'g0.ram'))).toBe(true);
    child.kill('SIGKILL');
    await once(child, 'exit');
    expect(await gone(dir, 5000)).toBe(true);
  }, 60_000);

  it('is ended by removeRuntimeDir, and a directory removed so stays removed', async () => {
    const dir = createRuntimeDir();
    fs.writeFileSync(path.join(dir, 'g0.ram'), 'x');
    removeRuntimeDir(dir);
    expect(fs.existsSync(dir)).toBe(false);
    const removers = () => spawnSync('pgrep', ['-f', `xme-runtime-dir-remover ${dir}`], { encoding: 'utf8' }).stdout.trim();
    for (const end = Date.now() + 5000; removers() !== '' && Date.now() < end; ) await sleep(20);
    expect(removers()).toBe('');
  });
});
