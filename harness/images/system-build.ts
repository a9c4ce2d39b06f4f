/**
 * Builds a system image in the cache: a real Debian system on one read-only qcow2 base disk.
 *   tree        mmdebstrap --variant=minbase of the package list (system/<name>.packages), from the host's own
 *               apt sources, customized by system/customize.sh (no password, fstab, autologin, loopback only,
 *               the build workload's C sources, pgbench tables)
 *   base.qcow2  mkfs.ext4 -d <tree> (no mount, no loop device), then qemu-img convert -O qcow2
 *   vmlinuz, initrd.img, config   the tree's own /boot (the cloud kernel has virtio_blk as a module)
 *   System.map  from the kernel's -dbg package, as for kernel images
 * Everything is made in a temporary directory beside the cache entry and renamed into place at the end; a
 * failure, Ctrl-C or SIGTERM removes it (never crossing into a mount left inside it), and a directory left by a
 * killed build is removed by the next one. A second build with the same inputs is a no-op.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { execFileSync } from 'node:child_process';
import { XmeError } from '../util/errors.ts';
import { findOnPath } from '../util/tools.ts';
import { acquireFileLock } from '../util/file-lock.ts';
import { onCleanup } from '../util/cleanup.ts';
import { processAlive, processExists } from '../util/process.ts';
import { fetchRealSystemMap, imageDir, imagesDir, resolveDebugPackage } from './build.ts';
import { resolveKernelPackage, type PackageRef } from './debian-packages.ts';
import { readHostSources, releaseSources, sourceLine, type AptSource } from './apt-sources.ts';
import {
  readPackageList,
  resolveIncludes,
  systemKernelFlavour,
  systemRecipeByName,
  systemRecipeDir,
  systemRecipeHash,
  type SystemRecipe,
} from './system-recipes.ts';
import { checkSystemImage, fileRecord, MANIFEST_SCHEMA, type InstalledPackage, type SystemImage, type SystemImageManifest } from './manifest.ts';

export const customizeScriptPath = path.join(systemRecipeDir, 'customize.sh');

/** The host tools a system build runs, and the Debian package of each (a missing one is named with it). */
export const systemToolPackages = {
  mmdebstrap: 'mmdebstrap',
  'qemu-img': 'qemu-utils',
  'mkfs.ext4': 'e2fsprogs',
  'dpkg-query': 'dpkg',
  chroot: 'coreutils',
  du: 'coreutils',
  rm: 'coreutils',
  umount: 'mount',
} as const;
export type SystemTool = keyof typeof systemToolPackages;

/** Packages that would configure a network interface: a system image must have none (loopback only). */
const NETWORK_CONFIGURERS = ['ifupdown', 'isc-dhcp-client', 'dhcpcd-base', 'network-manager', 'netplan.io', 'connman', 'systemd-resolved'];

function findTool(tool: SystemTool): string | undefined {
  // mkfs.ext4 and chroot live in sbin, which a non-root PATH may lack.
  return findOnPath(tool) ?? ['/usr/sbin', '/sbin'].map((dir) => path.join(dir, tool)).find((file) => fs.existsSync(file));
}

export function requireSystemTool(tool: SystemTool): string {
  const found = findTool(tool);
  if (!found) {
    throw new XmeError(
      `${tool} is not installed (system images need it)`,
      `install it with: apt-get install ${systemToolPackages[tool]} (or run scripts/setup --image debian-system)`,
    );
  }
  return found;
}

/** Why this host cannot build system images (not root, a tool missing), or undefined when it can. */
export function systemBuildBlocker(): string | undefined {
  if (process.getuid?.() !== 0) return 'building a system image needs root (mmdebstrap --mode=root, mkfs.ext4 -d keeping owners)';
  const missing = (Object.keys(systemToolPackages) as SystemTool[]).filter((tool) => !findTool(tool));
  if (missing.length) return `missing ${missing.join(', ')} (apt-get install ${[...new Set(missing.map((t) => systemToolPackages[t]))].join(' ')})`;
  return undefined;
}

export interface SystemBuildOptions {
  /** Pin a kernel ABI such as "6.1.0-56" instead of the kernel image recipe's current one. */
  kernelAbi?: string;
  /** Rebuild even if a valid image with the same inputs exists. */
  force?: boolean;
  /** Keep the large -dbg .deb in the download cache. */
  keepDebugDeb?: boolean;
  onStep?: (message: string) => void;
}

export interface SystemBuildResult {
  image: SystemImage;
  /** false when an existing valid image was reused. */
  built: boolean;
  seconds: number;
  /** Seconds per phase of a build (empty when the image was reused). */
  phases: Record<string, number>;
}

export interface SystemInputs {
  recipe: SystemRecipe;
  packages: string[];
  includes: string[];
  kernel: PackageRef;
  debug: PackageRef;
  sources: AptSource[];
  recipeHash: string;
}

/** Everything a build of `name` depends on, resolved from the host's apt (no download). */
export async function resolveSystemInputs(name: string, options: Pick<SystemBuildOptions, 'kernelAbi'> = {}): Promise<SystemInputs> {
  const recipe = systemRecipeByName(name);
  const { flavour, abi } = systemKernelFlavour(recipe);
  const kernel = await resolveKernelPackage(flavour, options.kernelAbi ?? abi);
  const debug = await resolveDebugPackage(kernel);
  const packages = readPackageList(recipe);
  const includes = resolveIncludes(packages, flavour, kernel);
  const sources = releaseSources(readHostSources(), recipe.suite, recipe.components);
  const recipeHash = systemRecipeHash({
    recipe,
    packages,
    kernel,
    debug,
    sources: sources.map((source) => sourceLine(source)),
    customizeScript: fs.readFileSync(customizeScriptPath, 'utf8'),
  });
  return { recipe, packages, includes, kernel, debug, sources, recipeHash };
}

/** Build (or reuse) the named system image. */
export async function buildSystemImage(name: string, options: SystemBuildOptions = {}): Promise<SystemBuildResult> {
  systemRecipeByName(name);
  fs.mkdirSync(imagesDir(), { recursive: true });
  // One builder per image at a time; an interrupted build leaves no lock file behind either.
  const release = await acquireFileLock(path.join(imagesDir(), `.${name}.lock`));
  const unregister = onCleanup({ name: `the build lock of image '${name}'`, run: async () => release(), runSync: release });
  try {
    return await buildLocked(name, options);
  } finally {
    unregister();
    release();
  }
}

async function buildLocked(name: string, options: SystemBuildOptions): Promise<SystemBuildResult> {
  const started = Date.now();
  const step = options.onStep ?? (() => undefined);
  step(`resolving the inputs of system image '${name}' (kernel, package list, the host's apt sources)`);
  const inputs = await resolveSystemInputs(name, options);
  const target = imageDir(name);
  removeStaleWorkspaces(name, step);

  if (!options.force) {
    if (fs.existsSync(target)) step('verifying the cached image (sha256 of every file)');
    const existing = await checkSystemImage(target);
    if (existing.ok && existing.image.manifest.recipeHash === inputs.recipeHash) {
      return { image: existing.image, built: false, seconds: (Date.now() - started) / 1000, phases: {} };
    }
    if (fs.existsSync(target)) step(`rebuilding: ${existing.ok ? 'its inputs changed' : existing.reason}`);
  }

  const blocker = systemBuildBlocker();
  if (blocker) throw new XmeError(`cannot build system image '${name}': ${blocker}`, 'install the tools with scripts/setup --image debian-system, as root');

  const workspace = new Workspace(name);
  let phases: Record<string, number>;
  try {
    phases = await buildInto(workspace, inputs, options, step);
    const old = `${target}.old-${process.pid}`;
    if (fs.existsSync(target)) fs.renameSync(target, old);
    fs.renameSync(workspace.dir, target);
    fs.rmSync(old, { recursive: true, force: true });
  } catch (error) {
    await workspace.dispose();
    throw error;
  } finally {
    workspace.release();
  }
  const check = await checkSystemImage(target);
  if (!check.ok) throw new XmeError(`image '${name}' failed verification right after building: ${check.reason}`);
  return { image: check.image, built: true, seconds: (Date.now() - started) / 1000, phases };
}

/** A verified system image; a missing or corrupted one is an error that says how to build it. */
export async function loadSystemImage(name: string): Promise<SystemImage> {
  systemRecipeByName(name);
  const check = await checkSystemImage(imageDir(name));
  if (!check.ok) {
    throw new XmeError(`system image '${name}' is not usable: ${check.reason}`, `build it with: xme image build ${name}`);
  }
  return check.image;
}

async function buildInto(
  workspace: Workspace,
  inputs: SystemInputs,
  options: SystemBuildOptions,
  step: (message: string) => void,
): Promise<Record<string, number>> {
  const { recipe, kernel } = inputs;
  const work = workspace.dir;
  const tree = path.join(work, 'tree');
  const release = kernel.name.replace(/^linux-image-/, '');
  const phases: Record<string, number> = {};
  const timed = async <T>(phase: string, run: () => Promise<T>): Promise<T> => {
    const start = Date.now();
    try {
      return await run();
    } finally {
      phases[phase] = (Date.now() - start) / 1000;
    }
  };

  // The real System.map comes from a 280 MB -dbg package: fetch it while mmdebstrap works.
  const systemMap = timed('systemMap', () =>
    fetchRealSystemMap(inputs.debug, release, path.join(work, 'System.map'), options, (m) => step(`System.map: ${m}`)),
  );
  systemMap.catch(() => undefined); // awaited below; not an unhandled rejection meanwhile
  try {
    step(`mmdebstrap --variant=minbase ${recipe.suite}: ${inputs.includes.length} packages and their dependencies`);
    await timed('mmdebstrap', () => runMmdebstrap(workspace, tree, inputs, step));
  } finally {
    await systemMap.catch(() => undefined);
  }
  await systemMap;

  step('checking the tree (installed packages, kernel, no network configuration)');
  const packages = await installedPackages(tree);
  checkTree(tree, inputs, packages, release);
  const buildSource = readBuildSource(tree, recipe);
  fs.copyFileSync(path.join(tree, 'boot', `vmlinuz-${release}`), path.join(work, 'vmlinuz'));
  fs.copyFileSync(path.join(tree, 'boot', `initrd.img-${release}`), path.join(work, 'initrd.img'));
  fs.copyFileSync(path.join(tree, 'boot', `config-${release}`), path.join(work, 'config'));

  const treeBytes = Number((await workspace.run('du', ['-s', '-b', tree])).stdout.split('\t')[0]);
  const fileSystemBytes = recipe.diskMiB * 1024 * 1024;
  if (!(treeBytes < fileSystemBytes * 0.8)) {
    throw new XmeError(
      `the tree has ${mib(treeBytes)} MiB: too much for a ${recipe.diskMiB} MiB disk`,
      `raise diskMiB of '${recipe.name}' in harness/images/system-recipes.ts`,
    );
  }
  const disk = path.join(work, 'disk.img');
  step(`mkfs.ext4 -d: a ${recipe.diskMiB} MiB ext4 file system from the ${mib(treeBytes)} MiB tree (no mount)`);
  // The same inputs give the same file system UUID: derived from the recipe hash.
  const uuid = inputs.recipeHash.slice(0, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
  await timed('mkfs', () =>
    workspace.run(requireSystemTool('mkfs.ext4'), ['-q', '-F', '-L', 'root', '-U', uuid, '-E', `hash_seed=${uuid}`, '-d', tree, disk, `${recipe.diskMiB}M`]),
  );
  step('removing the tree');
  workspace.removeTree(tree);

  step('qemu-img convert -O qcow2: the read-only base disk');
  const base = path.join(work, 'base.qcow2');
  await timed('convert', () => workspace.run(requireSystemTool('qemu-img'), ['convert', '-O', 'qcow2', disk, base]));
  fs.rmSync(disk);
  fs.chmodSync(base, 0o444);

  step('sha256 of every file, manifest');
  const manifest: SystemImageManifest = await timed('manifest', async () => ({
    schema: MANIFEST_SCHEMA,
    kind: 'system',
    name: recipe.name,
    recipeHash: inputs.recipeHash,
    builtAt: new Date().toISOString(),
    kernelRelease: release,
    kernel: { package: kernel.name, version: kernel.version },
    debugPackage: { package: inputs.debug.name, version: inputs.debug.version },
    suite: recipe.suite,
    sources: inputs.sources.map((source) => sourceLine(source)),
    requested: inputs.includes,
    packages,
    buildSource,
    pgbench: { ...recipe.pgbench },
    kernelCommandLine: recipe.kernelCommandLine,
    treeBytes,
    fileSystemBytes,
    files: {
      baseDisk: await fileRecord(work, 'base.qcow2'),
      vmlinuz: await fileRecord(work, 'vmlinuz'),
      initrd: await fileRecord(work, 'initrd.img'),
      systemMap: await fileRecord(work, 'System.map'),
      config: await fileRecord(work, 'config'),
    },
  }));
  fs.writeFileSync(path.join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return phases;
}

function mib(bytes: number): string {
  return (bytes / (1 << 20)).toFixed(0);
}

async function runMmdebstrap(workspace: Workspace, tree: string, inputs: SystemInputs, step: (m: string) => void): Promise<void> {
  const { recipe } = inputs;
  const mirrors = [
    ...inputs.sources.map((source) => sourceLine(source, 'deb')),
    // The build workload's sources: deb-src of the very same archive entries.
    ...inputs.sources.map((source) => sourceLine(source, 'deb-src')),
  ];
  const args = [
    '--mode=root',
    '--variant=minbase',
    '--format=directory',
    `--include=${inputs.includes.join(',')}`,
    `--components=${recipe.components.join(',')}`,
    '--aptopt=Acquire::Languages "none"',
    `--customize-hook=sh ${shellQuote(customizeScriptPath)} "$1"`,
    recipe.suite,
    tree,
    ...mirrors,
  ];
  const env = {
    XME_HOSTNAME: recipe.hostname,
    XME_APT_SOURCES: inputs.sources.map((source) => sourceLine(source, 'deb')).join('\n'),
    XME_BUILD_SOURCE: recipe.buildSource.sourcePackage,
    XME_BUILD_DIR: recipe.buildSource.dir,
    XME_BUILD_TARGET: recipe.buildSource.makeTarget,
    XME_PGBENCH_DB: recipe.pgbench.database,
    XME_PGBENCH_SCALE: String(recipe.pgbench.scale),
  };
  await workspace.run(requireSystemTool('mmdebstrap'), args, {
    env,
    what: 'mmdebstrap',
    hint: "the lines above are its last words; check the host's apt sources and run apt-get update",
    onLine: (line) => {
      if (line.startsWith('I: ')) step(`mmdebstrap: ${line.slice(3)}`);
    },
  });
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** `dpkg-query -W` output (status abbreviation, name, version, architecture; tab-separated): the installed ones. */
export function parseDpkgQuery(output: string): InstalledPackage[] {
  const packages: InstalledPackage[] = [];
  for (const line of output.split('\n')) {
    if (!line.trim()) continue;
    const [status, name, version, architecture] = line.split('\t');
    if (!status || !name || version === undefined || !architecture) throw new XmeError(`unexpected dpkg-query line '${line}'`);
    // 'ii ' is installed; 'rc ' (removed, config left) and half-installed states are not packages of the image.
    if (status.trim() !== 'ii') {
      if (/^.[^nic]/.test(status) || status[2] === 'R') throw new XmeError(`${name} is not fully installed (dpkg status '${status.trim()}')`);
      continue;
    }
    packages.push({ package: name, version, architecture });
  }
  return packages.sort((a, b) => (a.package < b.package ? -1 : a.package > b.package ? 1 : a.architecture < b.architecture ? -1 : 1));
}

async function installedPackages(tree: string): Promise<InstalledPackage[]> {
  const result = await execa(
    requireSystemTool('dpkg-query'),
    // dpkg-query's own ${field} format, not a template string.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format
    [`--admindir=${path.join(tree, 'var/lib/dpkg')}`, '-W', '-f', '${db:Status-Abbrev}\t${Package}\t${Version}\t${Architecture}\n'],
    { reject: false },
  );
  if (result.exitCode !== 0) throw new XmeError(`dpkg-query in the tree failed: ${result.stderr.trim()}`);
  return parseDpkgQuery(result.stdout);
}

/** The tree is what the recipe asked for: every package, the one resolved kernel, its boot files, no network. */
function checkTree(tree: string, inputs: SystemInputs, packages: InstalledPackage[], release: string): void {
  const installed = new Map(packages.map((p) => [p.package, p.version]));
  const missing = inputs.includes.map((spec) => spec.split('=')[0]!).filter((name) => !installed.has(name));
  if (missing.length) throw new XmeError(`mmdebstrap did not install ${missing.join(', ')}`);
  if (installed.get(inputs.kernel.name) !== inputs.kernel.version) {
    throw new XmeError(`the tree has ${inputs.kernel.name} ${installed.get(inputs.kernel.name)}, not ${inputs.kernel.version}`);
  }
  const kernels = packages.filter((p) => /^linux-image-\d/.test(p.package)).map((p) => p.package);
  if (kernels.length !== 1) throw new XmeError(`the tree has ${kernels.length} kernels (${kernels.join(', ')}): expected ${inputs.kernel.name} only`);
  for (const file of [`vmlinuz-${release}`, `initrd.img-${release}`, `config-${release}`]) {
    if (!fs.existsSync(path.join(tree, 'boot', file))) throw new XmeError(`the tree has no /boot/${file} (initramfs-tools did not run?)`);
  }
  const configurers = NETWORK_CONFIGURERS.filter((name) => installed.has(name));
  if (configurers.length) {
    throw new XmeError(
      `the tree has ${configurers.join(', ')}: a system image has no network beyond loopback`,
      'remove what pulls it in from the package list',
    );
  }
}

/** The build workload's source: version from the .dsc apt-get source fetched (kept beside the tree). */
function readBuildSource(tree: string, recipe: SystemRecipe): SystemImageManifest['buildSource'] {
  const { sourcePackage, dir, makeTarget } = recipe.buildSource;
  const srcDir = path.join(tree, 'usr/src');
  const dsc = fs.readdirSync(srcDir).find((file) => file.startsWith(`${sourcePackage}_`) && file.endsWith('.dsc'));
  const version = dsc && /^Version: (\S+)$/m.exec(fs.readFileSync(path.join(srcDir, dsc), 'utf8'))?.[1];
  if (!version) throw new XmeError(`the tree has no /usr/src/${sourcePackage}_*.dsc: apt-get source ${sourcePackage} did not run`);
  if (!fs.existsSync(path.join(tree, dir, 'Makefile'))) throw new XmeError(`the tree has no ${dir}/Makefile`);
  return { package: sourcePackage, version, dir, build: `make -C ${dir} ${makeTarget}`, clean: `make -C ${dir} clean` };
}

const WORKSPACE_PREFIX = (name: string) => `.${name}.build-`;

/** Remove work directories of builds that were killed outright (their PID, in the name, is gone). */
function removeStaleWorkspaces(name: string, step: (m: string) => void): void {
  for (const entry of fs.readdirSync(imagesDir())) {
    if (!entry.startsWith(WORKSPACE_PREFIX(name))) continue;
    const pid = Number(/^(\d+)-/.exec(entry.slice(WORKSPACE_PREFIX(name).length))?.[1]);
    if (pid && processAlive(pid)) continue;
    step(`removing ${entry}, left by a build that was killed`);
    removeWorkTree(path.join(imagesDir(), entry));
  }
}

/** Mount points at or below dir (this process's view), deepest first. */
function mountsUnder(dir: string): string[] {
  const unescapeOctal = (field: string) => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => !!point)
    .map(unescapeOctal)
    .filter((point) => point === dir || point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/**
 * PIDs of the processes a build of dir started and that may outlive it: those whose root directory is inside
 * dir (dpkg, the hook's postgres) and those whose command line names it (mmdebstrap, mkfs.ext4, qemu-img).
 */
function processesOf(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const root = fs.readlinkSync(`/proc/${entry}/root`);
      const argv = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (root === dir || root.startsWith(`${dir}/`) || argv.some((arg) => arg === dir || arg.startsWith(`${dir}/`))) {
        pids.push(Number(entry));
      }
    } catch {
      // gone, or not ours to inspect
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Remove a work directory without ever deleting through a mount: stop what the build started that still runs,
 * unmount what mmdebstrap left mounted (/proc, /sys, /dev/pts, /dev/shm of the tree), then rm
 * --one-file-system. Synchronous, so that it also runs on the way out of a dying process.
 */
function removeWorkTree(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const pids = processesOf(dir);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 3000;
  while (pids.some(alive) && Date.now() < deadline) execFileSync('sleep', ['0.1']);
  for (const point of mountsUnder(dir)) {
    try {
      execFileSync('umount', [point], { stdio: 'ignore' });
    } catch {
      execFileSync('umount', ['-l', point], { stdio: 'ignore' });
    }
  }
  const left = mountsUnder(dir);
  if (left.length) throw new XmeError(`cannot remove ${dir}: ${left.join(', ')} still mounted`, 'unmount them by hand, then remove it');
  execFileSync('rm', ['-rf', '--one-file-system', dir], { stdio: 'ignore' });
}

/** Signal the process group a detached child leads (its PID is the group's id). */
function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // the group is gone
  }
}

interface RunOptions {
  env?: Record<string, string>;
  /** Name in error messages (default: the program). */
  what?: string;
  hint?: string;
  /** Each line the program prints (stdout and stderr). */
  onLine?: (line: string) => void;
}

/**
 * The temporary directory of one build, next to the cache entry (so that the final rename stays on one file
 * system), and the program running in it. Registered with the process-wide cleanup until released.
 */
class Workspace {
  readonly dir: string;
  private child: ResultPromise | undefined;
  private readonly unregister: () => void;

  constructor(name: string) {
    this.dir = fs.mkdtempSync(path.join(imagesDir(), `${WORKSPACE_PREFIX(name)}${process.pid}-`));
    this.unregister = onCleanup({
      name: `the unfinished build of image '${name}' (${this.dir})`,
      run: () => this.dispose(),
      runSync: () => this.disposeSync(),
    });
  }

  /** Run a program to completion; a failure is an XmeError with its last lines of output. */
  async run(program: string, args: string[], options: RunOptions = {}): Promise<{ stdout: string }> {
    const tail: string[] = [];
    let stdout = '';
    // Its own process group: a signal stops the program and everything it started (apt, dpkg, the hook) at
    // once, through dispose(), and only after that is the directory removed. setpriv --pdeathsig: if xme is
    // killed outright, the kernel still stops the program (mmdebstrap then unmounts what it mounted), and the
    // next build removes the directory.
    const setpriv = findOnPath('setpriv');
    const [file, argv] = setpriv ? [setpriv, ['--pdeathsig', 'TERM', '--', program, ...args]] : [program, args];
    const child = execa(file, argv, {
      reject: false,
      stdin: 'ignore',
      env: options.env,
      buffer: false,
      detached: true,
    });
    this.child = child;
    const consume = (stream: NodeJS.ReadableStream | null, keep: boolean) => {
      let pending = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        if (keep) stdout += chunk;
        pending += chunk;
        const lines = pending.split(/\r?\n|\r/);
        pending = lines.pop() ?? '';
        for (const line of lines) {
          if (!line.trim()) continue;
          tail.push(line);
          if (tail.length > 30) tail.shift();
          options.onLine?.(line);
        }
      });
    };
    consume(child.stdout, true);
    consume(child.stderr, false);
    try {
      const result = await child;
      if (result.exitCode !== 0) {
        const what = options.what ?? path.basename(program);
        const how = result.signal ? `was killed by ${result.signal}` : `exited with status ${result.exitCode}`;
        throw new XmeError(`${what} ${how}:\n    ${tail.slice(-12).join('\n    ')}`, options.hint);
      }
      return { stdout };
    } finally {
      this.child = undefined;
    }
  }

  removeTree(tree: string): void {
    removeWorkTree(tree);
  }

  /** Stop the running program's process group (mmdebstrap unmounts what it mounted), then remove the directory. */
  async dispose(): Promise<void> {
    const child = this.child;
    if (child?.pid && child.exitCode === null && child.signalCode === null) {
      signalGroup(child.pid, 'SIGTERM');
      const exited = await Promise.race([
        child.then(
          () => true,
          () => true,
        ),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 6000)),
      ]);
      if (!exited) signalGroup(child.pid, 'SIGKILL');
    }
    this.disposeSync();
  }

  disposeSync(): void {
    const pid = this.child?.pid;
    if (pid && processExists(pid)) signalGroup(pid, 'SIGKILL');
    removeWorkTree(this.dir);
  }

  /** The build is over (renamed into place, or removed): nothing left to clean up. */
  release(): void {
    this.unregister();
  }
}
