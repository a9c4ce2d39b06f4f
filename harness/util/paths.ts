import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (this file is harness/util/paths.ts). */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/**
 * Where downloaded kernels and built guest images live: outside git, shared by runs.
 * XME_CACHE wins; otherwise $XDG_CACHE_HOME/xme or ~/.cache/xme.
 */
export function cacheDir(): string {
  if (process.env.XME_CACHE) return path.resolve(process.env.XME_CACHE);
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'xme');
}

/**
 * Where guest RAM files, QMP sockets and serial logs of running guests go. Guest RAM must be on a RAM file
 * system: a disk-backed file would be written back to disk while the guest runs. /dev/shm is tmpfs on Debian.
 * XME_RUNTIME_DIR overrides (it must be tmpfs too).
 */
export function runtimeBaseDir(): string {
  if (process.env.XME_RUNTIME_DIR) return path.resolve(process.env.XME_RUNTIME_DIR);
  try {
    if (fs.statSync('/dev/shm').isDirectory()) return '/dev/shm';
  } catch {
    // fall through: no /dev/shm on this system
  }
  return os.tmpdir();
}

/** Where `xme run` writes results/<run-id>/. */
export function resultsDir(): string {
  return process.env.XME_RESULTS ? path.resolve(process.env.XME_RESULTS) : path.join(projectRoot, 'results');
}
