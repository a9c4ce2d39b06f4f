/**
 * A private directory (0700) per backend for guest RAM files, QMP sockets and serial logs, named after the
 * harness PID. A harness that is SIGKILLed (the one case no handler can run in) would leave its guests' RAM
 * files in /dev/shm, i.e. in memory: each directory gets a remover, a detached shell that waits on a pipe
 * whose only write end this process holds (close-on-exec, so no QEMU inherits it). The kernel closes it when
 * this process dies, however it dies, and the shell removes the directory (the KSM guard's lifeline, for
 * files). removeRuntimeDir removes it and ends the remover. The next run's sweep stays as a second line.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { O_CLOEXEC, pipeOrThrow } from '../../util/libc.ts';
import { runtimeBaseDir } from '../../util/paths.ts';
import { processAlive } from '../../util/process.ts';

const PREFIX = 'xme-';
/** Per directory made here, the write end of its remover's lifeline. */
const lifelines = new Map<string, number>();

export function createRuntimeDir(): string {
  const dir = fs.mkdtempSync(path.join(runtimeBaseDir(), `${PREFIX}${process.pid}-`));
  fs.chmodSync(dir, 0o700);
  const [readEnd, writeEnd] = pipeOrThrow(O_CLOEXEC, 'the runtime directory remover');
  try {
    // `read` returns at end-of-file: this process closed the pipe (removeRuntimeDir) or died.
    const remover = spawn('/bin/sh', ['-c', 'read _; rm -rf -- "$1"', 'xme-runtime-dir-remover', dir], {
      detached: true,
      stdio: [readEnd, 'ignore', 'ignore'],
    });
    remover.on('error', () => undefined); // no shell: the next run's sweep removes what a kill leaves
    remover.unref();
  } finally {
    fs.closeSync(readEnd);
  }
  lifelines.set(dir, writeEnd);
  return dir;
}

/** Remove a directory made by createRuntimeDir, and end its remover. Synchronous (also for process exit). */
export function removeRuntimeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
  const lifeline = lifelines.get(dir);
  if (lifeline === undefined) return;
  lifelines.delete(dir);
  fs.closeSync(lifeline);
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
