/**
 * KSM is one host-wide mechanism, and a second xme process that wants it is refused (harness/host/ksm.ts). Test
 * files run in parallel, so every test file that turns KSM on (itself or through an `xme run` child) holds
 * this lock for its whole duration: they then take turns instead of refusing each other.
 */
import fs from 'node:fs';
import path from 'node:path';
import { processExists } from '../util/process.ts';

const LOCK = path.join('/run/xme', 'ksm-tests.lock');

/** Wait until no other live test process holds the lock, take it; returns the release function. */
export async function takeKsmTestLock(timeoutMs = 900_000): Promise<() => void> {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      fs.writeFileSync(LOCK, String(process.pid), { flag: 'wx' });
      return () => {
        if (fs.existsSync(LOCK) && fs.readFileSync(LOCK, 'utf8') === String(process.pid)) fs.rmSync(LOCK, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let owner = 0;
    try {
      owner = Number(fs.readFileSync(LOCK, 'utf8')) || 0;
    } catch {
      continue; // released between our two calls
    }
    if (!processExists(owner)) {
      fs.rmSync(LOCK, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`the KSM test lock ${LOCK} is still held by process ${owner}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
