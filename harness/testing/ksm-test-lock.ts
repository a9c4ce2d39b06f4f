/**
 * KSM is one host-wide mechanism, and a second xme process that wants it is refused (harness/host/ksm.ts). Test
 * files run in parallel, so every test file that turns KSM on (itself or through an `xme run` child) holds
 * this lock for its whole duration: they then take turns instead of refusing each other.
 */
import fs from 'node:fs';
import path from 'node:path';
import { acquireFileLock } from '../util/file-lock.ts';

const LOCK = path.join('/run/xme', 'ksm-tests.lock');

/** Wait until no other live test process holds the lock, take it; returns the release function. */
export async function takeKsmTestLock(timeoutMs = 900_000): Promise<() => void> {
  fs.mkdirSync(path.dirname(LOCK), { recursive: true });
  return acquireFileLock(LOCK, timeoutMs);
}
