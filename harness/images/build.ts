/**
 * Builds a guest image in the cache from Debian's real kernel packages:
 *   vmlinuz + config   from linux-image-<abi>-<flavour>
 *   System.map         from linux-image-<abi>-<flavour>-dbg (only that file is extracted)
 *   initramfs          busybox-static + xme-load (compiled here) + guest-images/init/init.sh
 * A second build with the same inputs is a no-op; a corrupted entry (sha256 mismatch) is rebuilt.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { cacheDir, projectRoot } from '../util/paths.ts';
import { sha256 } from '../util/hash.ts';
import { XmeError } from '../util/errors.ts';
import { requireTool } from '../util/tools.ts';
import { withFileLock } from '../util/file-lock.ts';
import { BUSYBOX_WORKLOADS } from '../vocabulary.ts';
import { recipeByName } from './recipes.ts';
import { writeCpio, type CpioEntry } from './cpio.ts';
import { checkImage, fileRecord, MANIFEST_SCHEMA, type GuestImage, type ImageManifest } from './manifest.ts';
import { debugPackageName, downloadPackage, extractFromDeb, resolveKernelPackage, resolvePackage, type PackageRef } from './debian-packages.ts';

/** Bump when the layout of built images changes, so that old cache entries are rebuilt. */
const BUILDER_VERSION = 1;

export const initSourceDir = path.join(projectRoot, 'guest-images', 'init');

export function imagesDir(): string {
  return path.join(cacheDir(), 'images');
}

export function imageDir(name: string): string {
  return path.join(imagesDir(), name);
}

export interface BuildOptions {
  /** Pin a kernel ABI such as "6.1.0-56" instead of the meta-package's current one. */
  kernelAbi?: string;
  /** Rebuild even if a valid image with the same inputs exists. */
  force?: boolean;
  /** Keep the large -dbg .deb in the download cache (default: delete it after taking System.map). */
  keepDebugDeb?: boolean;
  onStep?: (message: string) => void;
}

export interface BuildResult {
  image: GuestImage;
  /** false when an existing valid image was reused. */
  built: boolean;
  seconds: number;
}

interface Inputs {
  kernel: PackageRef;
  debug: PackageRef;
  busybox: PackageRef;
  recipeHash: string;
}

/** The -dbg twin of a kernel package; a version other than the kernel's is an error (its System.map would not match). */
export async function resolveDebugPackage(kernel: PackageRef): Promise<PackageRef> {
  const debug = await resolvePackage(debugPackageName(kernel.name));
  if (debug.version !== kernel.version) {
    throw new XmeError(
      `${debug.name} is at ${debug.version} but ${kernel.name} is at ${kernel.version}: their System.map would not match`,
      'run apt-get update, or pin another ABI with --kernel-abi',
    );
  }
  return debug;
}

async function resolveInputs(name: string, options: BuildOptions): Promise<Inputs> {
  const recipe = recipeByName(name);
  const kernel = await resolveKernelPackage(recipe.flavour, options.kernelAbi ?? recipe.abi);
  const debug = await resolveDebugPackage(kernel);
  const busybox = await resolvePackage('busybox-static');
  const initSources = ['init.sh', 'xme-load.c'].map((file) => fs.readFileSync(path.join(initSourceDir, file), 'utf8'));
  const recipeHash = sha256(JSON.stringify({ BUILDER_VERSION, recipe, kernel, debug, busybox, initSources }));
  return { kernel, debug, busybox, recipeHash };
}

/** Build (or reuse) the named image. */
export function buildImage(name: string, options: BuildOptions = {}): Promise<BuildResult> {
  recipeByName(name);
  fs.mkdirSync(imagesDir(), { recursive: true });
  // One builder per image at a time: parallel test files or two terminals may ask at once.
  return withFileLock(path.join(imagesDir(), `.${name}.lock`), () => buildImageLocked(name, options));
}

async function buildImageLocked(name: string, options: BuildOptions): Promise<BuildResult> {
  const started = Date.now();
  const step = options.onStep ?? (() => undefined);
  step(`resolving Debian packages for image '${name}'`);
  const inputs = await resolveInputs(name, options);
  const target = imageDir(name);

  if (!options.force) {
    const existing = await checkImage(target);
    if (existing.ok && existing.image.manifest.recipeHash === inputs.recipeHash) {
      return { image: existing.image, built: false, seconds: (Date.now() - started) / 1000 };
    }
    if (fs.existsSync(target)) step(`rebuilding: ${existing.ok ? 'its inputs changed' : existing.reason}`);
  }

  const work = fs.mkdtempSync(path.join(imagesDir(), `.${name}.build-`));
  try {
    await buildInto(work, name, inputs, options, step);
    // Replace atomically enough: a reader sees the old image, nothing, or the new one — never half of one.
    const old = `${target}.old-${process.pid}`;
    if (fs.existsSync(target)) fs.renameSync(target, old);
    fs.renameSync(work, target);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (error) {
    fs.rmSync(work, { recursive: true, force: true });
    throw error;
  }
  const check = await checkImage(target);
  if (!check.ok) throw new XmeError(`image '${name}' failed verification right after building: ${check.reason}`);
  return { image: check.image, built: true, seconds: (Date.now() - started) / 1000 };
}

async function buildInto(work: string, name: string, inputs: Inputs, options: BuildOptions, step: (m: string) => void) {
  const debs = path.join(cacheDir(), 'debs');
  const release = inputs.kernel.name.replace(/^linux-image-/, '');

  step(`downloading ${inputs.kernel.name} ${inputs.kernel.version}`);
  const kernelDeb = await downloadPackage(inputs.kernel, debs);
  await extractFromDeb(kernelDeb, `./boot/vmlinuz-${release}`, path.join(work, 'vmlinuz'));
  await extractFromDeb(kernelDeb, `./boot/config-${release}`, path.join(work, 'config'));

  await fetchRealSystemMap(inputs.debug, release, path.join(work, 'System.map'), options, step);

  step(`building the initramfs (${inputs.busybox.name} ${inputs.busybox.version}, xme-load)`);
  const busyboxDeb = await downloadPackage(inputs.busybox, debs);
  const busybox = path.join(work, 'busybox');
  await extractFromDeb(busyboxDeb, './bin/busybox', busybox);
  const xmeLoad = path.join(work, 'xme-load');
  await compileWorkload(xmeLoad);
  fs.writeFileSync(path.join(work, 'initramfs.cpio'), initramfs(fs.readFileSync(busybox), fs.readFileSync(xmeLoad)));
  fs.rmSync(busybox);
  fs.rmSync(xmeLoad);

  const manifest: ImageManifest = {
    schema: MANIFEST_SCHEMA,
    name,
    recipeHash: inputs.recipeHash,
    builtAt: new Date().toISOString(),
    kernelRelease: release,
    kernel: { package: inputs.kernel.name, version: inputs.kernel.version },
    debugPackage: { package: inputs.debug.name, version: inputs.debug.version },
    busybox: { package: inputs.busybox.name, version: inputs.busybox.version },
    workloads: [...BUSYBOX_WORKLOADS],
    files: {
      vmlinuz: await fileRecord(work, 'vmlinuz'),
      initramfs: await fileRecord(work, 'initramfs.cpio'),
      systemMap: await fileRecord(work, 'System.map'),
      config: await fileRecord(work, 'config'),
    },
  };
  fs.writeFileSync(path.join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

/**
 * The real System.map of a kernel release, taken from its -dbg package into dest (the large .deb is deleted
 * afterwards unless keepDebugDeb). Kernel and system images both get theirs here.
 */
export async function fetchRealSystemMap(
  debug: PackageRef,
  release: string,
  dest: string,
  options: Pick<BuildOptions, 'keepDebugDeb'>,
  step: (message: string) => void,
): Promise<void> {
  step(`downloading ${debug.name} (large: it is the only package with the real System.map)`);
  const debugDeb = await downloadPackage(debug, path.join(cacheDir(), 'debs'));
  step('extracting System.map from the -dbg package');
  await extractFromDeb(debugDeb, `./usr/lib/debug/boot/System.map-${release}`, dest);
  if (!options.keepDebugDeb) fs.rmSync(debugDeb, { force: true });
  assertRealSystemMap(dest);
}

/** The placeholder System.map in linux-image-* is 83 bytes; the real one has tens of thousands of symbols. */
function assertRealSystemMap(file: string): void {
  const head = fs
    .readFileSync(file)
    .subarray(0, 1 << 20)
    .toString('latin1');
  if (fs.statSync(file).size < 100_000 || !/^[0-9a-f]{16} T _text$/m.test(head)) {
    throw new XmeError(`${file} is not a real System.map (no _text symbol)`, 'check the -dbg package version');
  }
}

/** Compile the guest workload statically: the initramfs has no libc. */
async function compileWorkload(output: string): Promise<void> {
  requireTool('gcc');
  const result = await execa('gcc', ['-O2', '-static', '-s', '-Wall', '-o', output, path.join(initSourceDir, 'xme-load.c')], {
    reject: false,
  });
  if (result.exitCode !== 0) {
    throw new XmeError(
      `compiling xme-load failed: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`,
      'a static build needs libc6-dev: apt-get install gcc libc6-dev',
    );
  }
}

/** The initramfs: /init, static busybox, xme-load, and /dev/console so that /init has a console. */
export function initramfs(busybox: Buffer, xmeLoad: Buffer): Buffer {
  const entries: CpioEntry[] = [
    ...['bin', 'dev', 'proc', 'sys', 'tmp', 'sbin', 'usr', 'usr/bin', 'usr/sbin'].map(
      (dir): CpioEntry => ({ kind: 'dir', path: dir, mode: dir === 'tmp' ? 0o1777 : 0o755 }),
    ),
    { kind: 'chardev', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
    { kind: 'chardev', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
    { kind: 'file', path: 'bin/busybox', data: busybox, mode: 0o755 },
    { kind: 'symlink', path: 'bin/sh', target: 'busybox' },
    { kind: 'file', path: 'bin/xme-load', data: xmeLoad, mode: 0o755 },
    { kind: 'file', path: 'init', data: fs.readFileSync(path.join(initSourceDir, 'init.sh')), mode: 0o755 },
  ];
  return writeCpio(entries);
}

/** A built, verified image; a missing or corrupted one is an error that says how to build it. */
export async function loadImage(name: string): Promise<GuestImage> {
  recipeByName(name);
  const check = await checkImage(imageDir(name));
  if (!check.ok) {
    throw new XmeError(`guest image '${name}' is not usable: ${check.reason}`, `build it with: xme image build ${name}`);
  }
  return check.image;
}
