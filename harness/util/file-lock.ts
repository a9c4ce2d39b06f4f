import fs from 'node:fs';
import { processAlive } from './process.ts';

/**
 * Take an exclusive lock file (parallel test files, two terminals building into one cache): it holds the
 * owner's PID; a lock whose PID is gone is taken over. Waits while a live process holds it, at most
 * `timeoutMs`. Returns the release function (which removes the file only if it is still ours).
 */
export async function acquireFileLock(lockFile: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      return () => {
        try {
          if (fs.readFileSync(lockFile, 'utf8') === String(process.pid)) fs.rmSync(lockFile, { force: true });
        } catch {
          // already gone
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(lockFile, 'utf8')) || 0;
    } catch {
      continue; // released between our two calls
    }
    if (!processAlive(owner)) {
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the lock ${lockFile} is still held by process ${owner}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Run `work` holding an exclusive lock file (see acquireFileLock). */
export async function withFileLock<T>(lockFile: string, work: () => Promise<T>): Promise<T> {
  const release = await acquireFileLock(lockFile);
  try {
    return await work();
  } finally {
    release();
  }
}
