import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { withFileLock } from './file-lock.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-lock-test-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('withFileLock', () => {
  it('runs holders one at a time and releases the lock', async () => {
    const lock = path.join(dir, 'a.lock');
    const events: string[] = [];
    const holder = (name: string) =>
      withFileLock(lock, async () => {
        events.push(`${name} in`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        events.push(`${name} out`);
      });
    await Promise.all([holder('first'), holder('second')]);
    expect(events).toEqual(['first in', 'first out', 'second in', 'second out']);
    expect(fs.existsSync(lock)).toBe(false);
  });

  it('takes over a lock left by a process that is gone', async () => {
    const lock = path.join(dir, 'b.lock');
    fs.writeFileSync(lock, String(spawnSync('true').pid));
    expect(await withFileLock(lock, async () => 'done')).toBe('done');
  });

  it('releases the lock when the work fails', async () => {
    const lock = path.join(dir, 'c.lock');
    await expect(withFileLock(lock, async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(fs.existsSync(lock)).toBe(false);
  });
});
