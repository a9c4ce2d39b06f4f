import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { recipes } from './recipes.ts';
import {
  isSystemImage,
  parsePackageList,
  readPackageList,
  resolveIncludes,
  systemKernelFlavour,
  systemRecipeByName,
  systemRecipes,
  systemRecipeHash,
  type SystemRecipeInputs,
} from './system-recipes.ts';
import { customizeScriptPath, parseDpkgQuery, requireSystemTool } from './system-build.ts';

const KERNEL = { name: 'linux-image-6.1.0-57-cloud-amd64', version: '6.1.192-3' };

describe('package lists', () => {
  it('reads one package a line, with comments and blank lines', () => {
    expect(parsePackageList('# head\n\nsystemd-sysv\nnginx-light   # the web server\n  libc6-dev\n', 'x.packages')).toEqual([
      'systemd-sysv',
      'nginx-light',
      'libc6-dev',
    ]);
  });

  it('refuses duplicates, bad names, two names on a line and an empty list, naming the line', () => {
    expect(() => parsePackageList('a1\nb2\na1\n', 'x.packages')).toThrow(/x.packages:3: a1 is already listed at line 1/);
    expect(() => parsePackageList('ok\nNginx\n', 'x.packages')).toThrow(/x.packages:2: 'Nginx' is not a Debian package name/);
    expect(() => parsePackageList('gcc make\n', 'x.packages')).toThrow(/x.packages:1: one package a line/);
    expect(() => parsePackageList('# nothing\n\n', 'x.packages')).toThrow(/lists no package/);
  });

  it('the debian-system list has what its workloads need, and the kernel as the meta-package', () => {
    const packages = readPackageList(systemRecipeByName('debian-system'));
    for (const name of [
      'systemd-sysv',
      'udev',
      'linux-image-cloud-amd64',
      'initramfs-tools',
      'qemu-guest-agent',
      'nginx-light',
      'redis-server',
      'postgresql',
      'procps',
      'iproute2',
      'wrk',
      'gcc',
      'make',
    ]) {
      expect(packages).toContain(name);
    }
  });

  it('resolves the kernel meta-package to the exact package and version, and refuses lists without exactly one', () => {
    expect(resolveIncludes(['udev', 'linux-image-cloud-amd64', 'wrk'], 'cloud-amd64', KERNEL)).toEqual([
      'udev',
      'linux-image-6.1.0-57-cloud-amd64=6.1.192-3',
      'wrk',
    ]);
    expect(() => resolveIncludes(['udev'], 'cloud-amd64', KERNEL)).toThrow(/must name the kernel once, as linux-image-cloud-amd64/);
    expect(() => resolveIncludes(['linux-image-cloud-amd64', 'linux-image-amd64'], 'cloud-amd64', KERNEL)).toThrow(
      /found: linux-image-cloud-amd64, linux-image-amd64/,
    );
    expect(() => resolveIncludes(['linux-image-6.1.0-57-cloud-amd64'], 'cloud-amd64', KERNEL)).toThrow(/must name the kernel once/);
  });

  it('parses dpkg-query output: installed packages sorted, removed ones left out, broken ones refused', () => {
    const output = 'ii \tzlib1g\t1:1.2.13.dfsg-1\tamd64\nii \tadduser\t3.134\tall\nrc \told-thing\t1.0\tamd64\nii \tlibc6\t2.36-9+deb12u10\tamd64\n';
    expect(parseDpkgQuery(output)).toEqual([
      { package: 'adduser', version: '3.134', architecture: 'all' },
      { package: 'libc6', version: '2.36-9+deb12u10', architecture: 'amd64' },
      { package: 'zlib1g', version: '1:1.2.13.dfsg-1', architecture: 'amd64' },
    ]);
    expect(() => parseDpkgQuery('iU \tnginx-light\t1.22.1-9\tamd64\n')).toThrow(/nginx-light is not fully installed/);
    expect(() => parseDpkgQuery('garbage\n')).toThrow(/unexpected dpkg-query line/);
  });
});

describe('system recipes', () => {
  it('use the kernel of a kernel image recipe, and do not share names with kernel images', () => {
    for (const recipe of Object.values(systemRecipes)) {
      expect(systemKernelFlavour(recipe).flavour).toBe(recipes[recipe.kernelImage]!.flavour);
      expect(Object.hasOwn(recipes, recipe.name)).toBe(false);
    }
    expect(isSystemImage('debian-system')).toBe(true);
    expect(isSystemImage('cloud')).toBe(false);
    expect(isSystemImage('toString')).toBe(false);
    expect(() => systemRecipeByName('cloud')).toThrow(/unknown system image 'cloud'/);
  });

  it('may be pinned to a kernel ABI as <recipe>@<abi>: the same system with that kernel, under its own name', () => {
    const pinned = systemRecipeByName('debian-system@6.1.0-56');
    expect(pinned).toMatchObject({ name: 'debian-system@6.1.0-56', kernelImage: 'cloud@6.1.0-56', packagesFile: 'debian-system.packages' });
    expect(systemKernelFlavour(pinned)).toEqual({ flavour: 'cloud-amd64', abi: '6.1.0-56' });
    expect(systemKernelFlavour(systemRecipeByName('debian-system')).abi).toBeUndefined();
    expect(isSystemImage('debian-system@6.1.0-56')).toBe(true);
    for (const name of ['debian-system@6.1', 'cloud@6.1.0-56', 'nothing@6.1.0-56']) {
      expect(isSystemImage(name), name).toBe(false);
      expect(() => systemRecipeByName(name), name).toThrow(`unknown system image '${name}'`);
    }
  });

  it('hash every input: the same inputs give the same hash, any change another', () => {
    const recipe = systemRecipeByName('debian-system');
    const base: SystemRecipeInputs = {
      recipe,
      packages: readPackageList(recipe),
      kernel: KERNEL,
      debug: { name: `${KERNEL.name}-dbg`, version: KERNEL.version },
      sources: ['deb http://deb.debian.org/debian bookworm main'],
      customizeScript: fs.readFileSync(customizeScriptPath, 'utf8'),
    };
    const hash = systemRecipeHash(base);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(systemRecipeHash({ ...base, packages: [...base.packages] })).toBe(hash);
    const variants: SystemRecipeInputs[] = [
      { ...base, packages: [...base.packages, 'htop'] },
      { ...base, packages: base.packages.filter((p) => p !== 'wrk') },
      { ...base, kernel: { name: 'linux-image-6.1.0-58-cloud-amd64', version: KERNEL.version } }, // another ABI
      { ...base, kernel: { ...KERNEL, version: '6.1.192-4' } },
      { ...base, debug: { ...base.debug, version: '6.1.192-4' } },
      { ...base, sources: [...base.sources, 'deb http://deb.debian.org/debian bookworm-updates main'] },
      { ...base, customizeScript: `${base.customizeScript}\n# changed\n` },
      { ...base, recipe: { ...recipe, diskMiB: recipe.diskMiB * 2 } },
      { ...base, recipe: { ...recipe, pgbench: { ...recipe.pgbench, scale: 3 } } },
      { ...base, recipe: { ...recipe, buildSource: { ...recipe.buildSource, sourcePackage: 'zlib' } } },
    ];
    const hashes = variants.map(systemRecipeHash);
    for (const other of hashes) expect(other).not.toBe(hash);
    expect(new Set(hashes).size).toBe(hashes.length);
  });

  it('name the Debian package of a missing tool', () => {
    const saved = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => requireSystemTool('qemu-img')).toThrow(/qemu-img is not installed/);
      expect(() => requireSystemTool('qemu-img')).toThrow(expect.objectContaining({ hint: expect.stringMatching(/apt-get install qemu-utils/) }));
      expect(() => requireSystemTool('mmdebstrap')).toThrow(expect.objectContaining({ hint: expect.stringMatching(/apt-get install mmdebstrap/) }));
    } finally {
      process.env.PATH = saved;
    }
  });
});
