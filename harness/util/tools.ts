import fs from 'node:fs';
import path from 'node:path';
import { XmeError } from './errors.ts';

/** The Debian package that provides each host tool xme runs, so that a missing tool names its package. */
export const toolPackages = {
  'qemu-system-x86_64': 'qemu-system-x86',
  'apt-get': 'apt',
  'apt-cache': 'apt',
  'dpkg-deb': 'dpkg',
  tar: 'tar',
  gcc: 'gcc libc6-dev',
  xl: 'xen-utils-4.17',
} as const;

export type HostTool = keyof typeof toolPackages;

/** The absolute path of a program on PATH, or undefined. */
export function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, program);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** Path of a required host tool; a missing one is an error that names the Debian package to install. */
export function requireTool(tool: HostTool): string {
  const found = findOnPath(tool);
  if (!found) {
    throw new XmeError(`${tool} is not installed`, `install it with: apt-get install ${toolPackages[tool]} (or run scripts/setup)`);
  }
  return found;
}
