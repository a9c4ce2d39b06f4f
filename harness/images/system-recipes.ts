/**
 * System image recipes: a real Debian system (systemd, real applications, a C code base to build) on one
 * ext4 disk, booted with the kernel of a kernel image recipe (recipes.ts) so that both kinds run the same
 * kernel and the same real System.map. The package list is data (system/<name>.packages); everything a build
 * depends on goes into the recipe hash, so that a cached image is reused exactly while its inputs are unchanged.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../util/hash.ts';
import { projectRoot } from '../util/paths.ts';
import { XmeError } from '../util/errors.ts';
import { recipeByName } from './recipes.ts';
import type { PackageRef } from './debian-packages.ts';

/** Bump when the way a system image is built changes (not its data), so that old cache entries are rebuilt. */
export const SYSTEM_BUILDER_VERSION = 1;

export const systemRecipeDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'system');

/** A real C code base in the image for a build workload: the upstream tree of a Debian source package. */
export interface BuildSource {
  /** Debian source package, fetched with `apt-get source` from the same archive (deb-src of the same URIs). */
  sourcePackage: string;
  /** Where its upstream tree is unpacked in the guest. */
  dir: string;
  /** make target that builds it with gcc alone (no configure step); checked once at image build time. */
  makeTarget: string;
}

export interface SystemRecipe {
  name: string;
  description: string;
  /** Debian release (codename) to bootstrap; the host's apt sources must have it. */
  suite: string;
  components: readonly string[];
  /** The kernel image recipe whose flavour (and so ABI) the system boots. */
  kernelImage: string;
  /** Package list file in harness/images/system/. */
  packagesFile: string;
  buildSource: BuildSource;
  /** pgbench tables created at build time (postgres runs in the tree for it; no boot). */
  pgbench: { database: string; scale: number };
  hostname: string;
  /** Size of the ext4 file system (the qcow2 base holds only what is used). */
  diskMiB: number;
  /** What the kernel needs to mount this disk as / and talk on the serial console. */
  kernelCommandLine: string;
}

export const systemRecipes: Record<string, SystemRecipe> = {
  'debian-system': {
    name: 'debian-system',
    description: 'a real Debian 12 system (systemd, nginx, redis, postgresql, wrk, gcc + Lua sources) on one qcow2 disk, cloud kernel',
    suite: 'bookworm',
    components: ['main'],
    kernelImage: 'cloud',
    packagesFile: 'debian-system.packages',
    // Lua 5.4: ~35 C files, a plain Makefile (`make posix` needs gcc and make only: no configure, no
    // readline), 1.4 MB unpacked; a full build is ~10 s of one host core, minutes under TCG.
    buildSource: { sourcePackage: 'lua5.4', dir: '/usr/src/lua5.4', makeTarget: 'posix' },
    pgbench: { database: 'pgbench', scale: 2 },
    hostname: 'xme-guest',
    diskMiB: 4096,
    kernelCommandLine: 'root=/dev/vda rw console=ttyS0',
  },
};

/**
 * A system image pinned to one kernel build, `<recipe>@<abi>` (e.g. `debian-system@6.1.0-56`): the same system
 * with that ABI's kernel, its modules on its own disk, cached under its own name — for mixed fleets of real
 * guests (scenario field guestImages), as kernel images are pinned (recipes.ts).
 */
const PINNED = /^([a-z][a-z0-9-]*)@(\d+\.\d+\.\d+-\d+)$/;

export function isSystemImage(name: string): boolean {
  return Object.hasOwn(systemRecipes, PINNED.exec(name)?.[1] ?? name);
}

export function systemRecipeByName(name: string): SystemRecipe {
  const pinned = PINNED.exec(name);
  const base = pinned ? pinned[1]! : name;
  const recipe = Object.hasOwn(systemRecipes, base) ? systemRecipes[base] : undefined;
  if (!recipe) {
    throw new XmeError(
      `unknown system image '${name}'`,
      `known system images: ${Object.keys(systemRecipes).join(', ')}, or one pinned to a kernel ABI such as debian-system@6.1.0-56 (xme image list)`,
    );
  }
  return pinned ? { ...recipe, name, kernelImage: `${recipe.kernelImage}@${pinned[2]}` } : recipe;
}

const PACKAGE_NAME = /^[a-z0-9][a-z0-9+.-]+$/;

/** One Debian package name a line, '#' comments; a bad name or a duplicate is an error naming its line. */
export function parsePackageList(text: string, from: string): string[] {
  const packages: string[] = [];
  const seen = new Map<string, number>();
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const where = `${from}:${index + 1}`;
    if (/\s/.test(line)) throw new XmeError(`${where}: one package a line, not '${line}'`);
    if (!PACKAGE_NAME.test(line)) throw new XmeError(`${where}: '${line}' is not a Debian package name`);
    const first = seen.get(line);
    if (first !== undefined) throw new XmeError(`${where}: ${line} is already listed at line ${first}`);
    seen.set(line, index + 1);
    packages.push(line);
  });
  if (packages.length === 0) throw new XmeError(`${from} lists no package`);
  return packages;
}

export function readPackageList(recipe: SystemRecipe): string[] {
  const file = path.join(systemRecipeDir, recipe.packagesFile);
  return parsePackageList(fs.readFileSync(file, 'utf8'), path.relative(projectRoot, file));
}

/** The kernel flavour of a system recipe: the one of its kernel image recipe. */
export function systemKernelFlavour(recipe: SystemRecipe): { flavour: string; abi?: string } {
  let kernelRecipe: ReturnType<typeof recipeByName>;
  try {
    kernelRecipe = recipeByName(recipe.kernelImage);
  } catch {
    throw new XmeError(`system image '${recipe.name}' names an unknown kernel image '${recipe.kernelImage}'`);
  }
  return { flavour: kernelRecipe.flavour, ...(kernelRecipe.abi ? { abi: kernelRecipe.abi } : {}) };
}

/**
 * What mmdebstrap installs: the list with the kernel meta-package replaced by the exact package and version
 * resolved for the kernel image (the meta-package would follow whatever ABI mmdebstrap's own, fresher apt
 * lists name, and the System.map from -dbg would no longer match).
 */
export function resolveIncludes(packages: readonly string[], flavour: string, kernel: PackageRef): string[] {
  const meta = `linux-image-${flavour}`;
  const kernels = packages.filter((name) => name.startsWith('linux-image-'));
  if (kernels.length !== 1 || kernels[0] !== meta) {
    throw new XmeError(
      `the package list must name the kernel once, as ${meta} (found: ${kernels.join(', ') || 'none'})`,
      "xme resolves it to the kernel image's exact package so that the -dbg System.map matches",
    );
  }
  return packages.map((name) => (name === meta ? `${kernel.name}=${kernel.version}` : name));
}

export interface SystemRecipeInputs {
  recipe: SystemRecipe;
  /** The package list as read (kernel still the meta-package). */
  packages: readonly string[];
  kernel: PackageRef;
  debug: PackageRef;
  /** The apt source lines the tree is bootstrapped from. */
  sources: readonly string[];
  /** The text of the customize hook (system/customize.sh): the build script's version as much as the number. */
  customizeScript: string;
}

/** Hash of everything a system image is built from: a change to any of them rebuilds the image. */
export function systemRecipeHash(inputs: SystemRecipeInputs): string {
  return sha256(
    JSON.stringify({
      SYSTEM_BUILDER_VERSION,
      recipe: inputs.recipe,
      packages: inputs.packages,
      kernel: { name: inputs.kernel.name, version: inputs.kernel.version },
      debug: { name: inputs.debug.name, version: inputs.debug.version },
      sources: inputs.sources,
      customizeScript: inputs.customizeScript,
    }),
  );
}
