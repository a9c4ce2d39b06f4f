import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SerialConsole } from './serial-console.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-serial-test-'));
afterEach(() => fs.rmSync(path.join(dir, 'log'), { force: true }));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('serial console', () => {
  it('follows a growing file, joining lines split across reads', () => {
    const file = path.join(dir, 'log');
    const console = new SerialConsole(file);
    console.poll(); // not created yet: no error
    fs.writeFileSync(file, 'early kernel noise\r\nXME-BOO');
    console.poll();
    expect(console.boot).toBeUndefined();
    fs.appendFileSync(file, 'TED release=r workload=cpu uptime=2.00\nXME-PROGRESS t_ms=1000 ops=5 workload=cpu\n');
    const before = Date.now();
    console.poll();
    expect(console.boot?.release).toBe('r');
    // Each progress line carries the host time it was read (guest time stops while a guest is paused).
    expect(console.progress).toEqual([{ tMs: 1000, ops: 5, hostMs: expect.any(Number) }]);
    expect(console.progress[0]!.hostMs!).toBeGreaterThanOrEqual(before);
  });

  it('when watched, reads new lines by itself and stamps them on arrival', async () => {
    const file = path.join(dir, 'watched');
    fs.writeFileSync(file, '');
    const console = new SerialConsole(file);
    console.watch(20);
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const written = Date.now();
      fs.appendFileSync(file, 'XME-PROGRESS t_ms=1 ops=1 workload=cpu\n');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(console.progress).toHaveLength(1); // nobody called poll()
      expect(console.progress[0]!.hostMs!).toBeGreaterThanOrEqual(written);
    } finally {
      console.unwatch();
    }
  });

  it('remembers the first failure line', () => {
    const file = path.join(dir, 'log');
    fs.writeFileSync(file, 'ok\nKernel panic - not syncing: VFS: Unable to mount root fs\nmore\n');
    const console = new SerialConsole(file);
    console.poll();
    expect(console.failure).toMatch(/^Kernel panic/);
    expect(console.tail(2)).toEqual(['Kernel panic - not syncing: VFS: Unable to mount root fs', 'more']);
  });

  it('keeps every XME-* line (not only the last 200) and finds them by prefix, dropping what precedes the marker', () => {
    const file = path.join(dir, 'log');
    const noise = Array.from({ length: 300 }, (_, i) => `kernel line ${i}\r\n`).join('');
    fs.writeFileSync(file, `XME-COWPROBE gfns from=0 list=1,2\r\n${noise}[  3.1] XME-COWPROBE ready pages=2 writes=1 same=0\r\nXME-ERROR boom\n`);
    const console = new SerialConsole(file);
    console.poll();
    expect(console.matching('XME-COWPROBE')).toEqual(['XME-COWPROBE gfns from=0 list=1,2', 'XME-COWPROBE ready pages=2 writes=1 same=0']);
    expect(console.matching('XME-ERROR')).toEqual(['XME-ERROR boom']);
    // Other prefixes: the last 200 lines only.
    const kernelLines = console.matching('kernel line');
    expect(kernelLines).toContain('kernel line 299');
    expect(kernelLines).not.toContain('kernel line 5');
  });
});
