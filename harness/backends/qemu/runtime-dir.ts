/**
 * A private directory (0700) per backend for guest RAM files, QMP sockets and serial logs, named after the
 * harness PID so that directories left by a harness that was SIGKILLed (the one case no handler can run in)
 * are found and removed by the next run.
 */
import fs from 'node:fs';
import path from 'node:path';
import { runtimeBaseDir } from '../../util/paths.ts';
import { processAlive } from '../../util/process.ts';

const PREFIX = 'xme-';

export function createRuntimeDir(): string {
  const dir = fs.mkdtempSync(path.join(runtimeBaseDir(), `${PREFIX}${process.pid}-`));
  fs.chmodSync(dir, 0o700);
  return dir;
}

/** Remove runtime directories whose harness process is gone; returns what was removed. */
export function sweepStaleRuntimeDirs(base = runtimeBaseDir()): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    return removed;
  }
  for (const name of names) {
    const match = new RegExp(`^${PREFIX}(\\d+)-\\w+$`).exec(name);
    if (!match || processAlive(Number(match[1]))) continue;
    const dir = path.join(base, name);
    try {
      if (fs.statSync(dir).uid !== process.getuid?.()) continue;
      fs.rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // raced with another sweeper, or not ours to remove
    }
  }
  return removed;
}

/** Every runtime directory of xme that exists now (for tests and `xme doctor`). */
export function listRuntimeDirs(base = runtimeBaseDir()): string[] {
  try {
    return fs
      .readdirSync(base)
      .filter((name) => name.startsWith(PREFIX))
      .map((name) => path.join(base, name));
  } catch {
    return [];
  }
}
