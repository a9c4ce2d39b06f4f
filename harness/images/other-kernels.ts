/**
 * System.maps of other Debian kernel builds, for checking that the harness refuses a System.map that does
 * not belong to the running guest. Taken from the real -dbg packages, cached outside git.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { cacheDir } from '../util/paths.ts';
import { XmeError } from '../util/errors.ts';
import { withFileLock } from '../util/file-lock.ts';
import { downloadPackage, extractFromDeb, resolvePackage } from './debian-packages.ts';

/** Kernel packages of a flavour that apt knows (newest ABI first), e.g. linux-image-6.1.0-55-cloud-amd64. */
export async function availableKernelPackages(flavour: string): Promise<string[]> {
  const result = await execa('apt-cache', ['search', '--names-only', `^linux-image-[0-9.]+-[0-9]+-${flavour}-dbg$`], { reject: false });
  const abi = (name: string) => name.match(/-(\d+)-/)?.[1] ?? '0';
  return result.stdout
    .split('\n')
    .map((line) => line.split(' ')[0]!)
    .filter(Boolean)
    .map((name) => name.replace(/-dbg$/, ''))
    .sort((a, b) => Number(abi(b)) - Number(abi(a)));
}

/** The real System.map of a kernel package (from its -dbg twin), cached at <cache>/system-maps/<release>. */
export async function fetchSystemMap(kernelPackage: string): Promise<string> {
  const release = kernelPackage.replace(/^linux-image-/, '');
  const dir = path.join(cacheDir(), 'system-maps', release);
  const file = path.join(dir, 'System.map');
  fs.mkdirSync(dir, { recursive: true });
  return withFileLock(path.join(dir, '.lock'), async () => {
    if (fs.existsSync(file) && fs.statSync(file).size > 100_000) return file;
    const debug = await resolvePackage(`${kernelPackage}-dbg`);
    const deb = await downloadPackage(debug, path.join(cacheDir(), 'debs'));
    const partial = `${file}.partial-${process.pid}`;
    try {
      await extractFromDeb(deb, `./usr/lib/debug/boot/System.map-${release}`, partial);
      fs.renameSync(partial, file);
    } finally {
      fs.rmSync(deb, { force: true });
      fs.rmSync(partial, { force: true });
    }
    return file;
  });
}

/** A System.map of the same flavour but another kernel build than `kernelPackage`. */
export async function otherSystemMap(flavour: string, kernelPackage: string): Promise<{ kernelPackage: string; file: string }> {
  const other = (await availableKernelPackages(flavour)).find((name) => name !== kernelPackage);
  if (!other) throw new XmeError(`apt knows no other ${flavour} kernel than ${kernelPackage}`, 'run apt-get update');
  return { kernelPackage: other, file: await fetchSystemMap(other) };
}
