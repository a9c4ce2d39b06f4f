/**
 * Builds xme's C (harness/hashing/native/*.c) once per source version with gcc into the cache
 * (XME_CACHE/native/), so every native module (the scan engine, the page compare) and every thread that loads
 * one finds the same shared object and none rebuilds what another built.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { cacheDir } from '../util/paths.ts';
import { findOnPath } from '../util/tools.ts';

/** The shared object of native/<name>.c linked with `libraries` (gcc arguments such as -l:libxxhash.so.0): its path, built if missing. */
export function buildNative(name: string, libraries: readonly string[] = []): string {
  const source = path.join(import.meta.dirname, 'native', `${name}.c`);
  const digest = createHash('sha256').update(fs.readFileSync(source)).digest('hex').slice(0, 16);
  const dir = path.join(cacheDir(), 'native');
  const target = path.join(dir, `${name}-${digest}.so`);
  if (fs.existsSync(target)) return target;
  const gcc = findOnPath('gcc');
  if (!gcc) throw new Error('gcc not found (Debian: gcc libc6-dev)');
  fs.mkdirSync(dir, { recursive: true });
  const temporary = `${target}.${process.pid}.tmp`;
  // -O3 vectorizes the zero check; no -march=native, so the cached object runs on any x86-64 (XXH3 itself is
  // the library's, memcmp glibc's, both dispatched at run time). Written to a temporary name and renamed: two
  // builders never see half a file.
  execFileSync(gcc, ['-O3', '-shared', '-fPIC', '-o', temporary, source, ...libraries], { stdio: ['ignore', 'ignore', 'pipe'] });
  fs.renameSync(temporary, target);
  return target;
}
