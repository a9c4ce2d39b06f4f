import fs from 'node:fs';
import { processExists } from './process.ts';

/**
 * Run `work` holding an exclusive lock file (parallel test files, two terminals building into one cache).
 * The lock holds the owner's PID; a lock whose PID is gone is taken over.
 */
export async function withFileLock<T>(lockFile: string, work: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      fs.writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      let owner = 0;
      try {
        owner = Number(fs.readFileSync(lockFile, 'utf8')) || 0;
      } catch {
        continue; // released between our two calls
      }
      if (!processExists(owner)) fs.rmSync(lockFile, { force: true });
      else await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
  try {
    return await work();
  } finally {
    fs.rmSync(lockFile, { force: true });
  }
}
