/**
 * Debian's real packages, fetched with the ordinary clients: apt-cache to resolve names and versions,
 * apt-get download (no install, no root needed) and dpkg-deb | tar to take single files out.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { XmeError } from '../util/errors.ts';
import { requireTool } from '../util/tools.ts';

export interface PackageRef {
  name: string;
  version: string;
}

/** The candidate version of a package and its Depends line, from apt-cache. */
async function aptShow(name: string): Promise<{ version: string; depends: string } | undefined> {
  requireTool('apt-cache');
  const result = await execa('apt-cache', ['show', '--no-all-versions', name], { reject: false });
  if (result.exitCode !== 0 || !result.stdout.trim()) return undefined;
  const field = (key: string) => new RegExp(`^${key}: (.*)$`, 'm').exec(result.stdout)?.[1]?.trim() ?? '';
  return { version: field('Version'), depends: field('Depends') };
}

export async function resolvePackage(name: string): Promise<PackageRef> {
  const shown = await aptShow(name);
  if (!shown?.version) {
    throw new XmeError(
      `Debian package ${name} is not known to apt`,
      'run apt-get update (scripts/setup does), and check that bookworm and bookworm-security are in the apt sources',
    );
  }
  return { name, version: shown.version };
}

/**
 * The versioned kernel package for a flavour: the one that Debian's meta-package linux-image-<flavour>
 * depends on now (e.g. linux-image-6.1.0-56-cloud-amd64), or the given ABI.
 */
export async function resolveKernelPackage(flavour: string, abi?: string): Promise<PackageRef> {
  if (abi) return resolvePackage(`linux-image-${abi}-${flavour}`);
  const meta = `linux-image-${flavour}`;
  const shown = await aptShow(meta);
  const versioned = shown?.depends.match(new RegExp(`linux-image-(\\d[\\w.+~-]*?)-${flavour.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\b`));
  if (!shown || !versioned) {
    throw new XmeError(
      `cannot find the current kernel of flavour ${flavour} (apt-cache show ${meta})`,
      'run apt-get update (scripts/setup does), or pin an ABI with --kernel-abi 6.1.0-56',
    );
  }
  return resolvePackage(`linux-image-${versioned[1]}-${flavour}`);
}

/** Download a package's .deb into dir (kept there as a cache); returns its path. */
export async function downloadPackage(ref: PackageRef, dir: string): Promise<string> {
  requireTool('apt-get');
  fs.mkdirSync(dir, { recursive: true });
  const expected = fs
    .readdirSync(dir)
    .find((file) => file.startsWith(`${ref.name}_`) && file.endsWith('.deb') && file.includes(ref.version.replace(/^\d+:/, '')));
  if (expected) return path.join(dir, expected);
  const result = await execa('apt-get', ['download', '-q', `${ref.name}=${ref.version}`], { cwd: dir, reject: false });
  const file = fs.readdirSync(dir).find((f) => f.startsWith(`${ref.name}_`) && f.endsWith('.deb'));
  if (result.exitCode !== 0 || !file) {
    throw new XmeError(
      `apt-get download ${ref.name}=${ref.version} failed: ${result.stderr.split('\n').filter(Boolean).pop() ?? 'no .deb'}`,
      'check the network access to Debian mirrors and run apt-get update',
    );
  }
  return path.join(dir, file);
}

/** Extract one file of a .deb (its path inside the package, e.g. ./boot/vmlinuz-…) to dest. */
export async function extractFromDeb(deb: string, member: string, dest: string): Promise<void> {
  requireTool('dpkg-deb');
  requireTool('tar');
  const memberPath = member.startsWith('./') ? member : `./${member.replace(/^\/+/, '')}`;
  const result = await execa('dpkg-deb', ['--fsys-tarfile', deb], { reject: false, buffer: { stdout: false } }).pipe(
    'tar',
    ['-x', '-O', '-f', '-', memberPath],
    { stdout: { file: dest }, reject: false },
  );
  if (result.exitCode !== 0) {
    fs.rmSync(dest, { force: true });
    throw new XmeError(`cannot extract ${memberPath} from ${path.basename(deb)}: ${result.stderr.trim()}`);
  }
}

/** The Debian package that holds the real System.map of a kernel package: its -dbg twin. */
export function debugPackageName(kernelPackage: string): string {
  return `${kernelPackage}-dbg`;
}
