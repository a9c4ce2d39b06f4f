import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  checkImage,
  checkSystemImage,
  fileRecord,
  parseAnyManifest,
  parseManifest,
  parseSystemManifest,
  type ImageManifest,
  type SystemImageManifest,
} from './manifest.ts';

let dir: string;

async function writeImage(): Promise<ImageManifest> {
  const files = { vmlinuz: 'vmlinuz', initramfs: 'initramfs.cpio', systemMap: 'System.map', config: 'config' };
  for (const [key, file] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), `content of ${key}\n`);
  const manifest: ImageManifest = {
    schema: 1,
    name: 'cloud',
    recipeHash: 'abc',
    builtAt: new Date(0).toISOString(),
    kernelRelease: '6.1.0-56-cloud-amd64',
    kernel: { package: 'linux-image-6.1.0-56-cloud-amd64', version: '6.1.192-2' },
    debugPackage: { package: 'linux-image-6.1.0-56-cloud-amd64-dbg', version: '6.1.192-2' },
    busybox: { package: 'busybox-static', version: '1:1.35.0-4' },
    workloads: ['idle', 'memchurn'],
    files: {
      vmlinuz: await fileRecord(dir, files.vmlinuz),
      initramfs: await fileRecord(dir, files.initramfs),
      systemMap: await fileRecord(dir, files.systemMap),
      config: await fileRecord(dir, files.config),
    },
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-manifest-test-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('image manifest', () => {
  it('accepts a manifest it wrote and verifies every file', async () => {
    const manifest = await writeImage();
    expect(parseManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    const check = await checkImage(dir);
    expect(check.ok).toBe(true);
    if (check.ok) expect(check.image.path('systemMap')).toBe(path.join(dir, 'System.map'));
  });

  it('names the offending field', async () => {
    const manifest = await writeImage();
    // biome-ignore lint/suspicious/noExplicitAny: the tests patch any field of a manifest read from JSON
    const broken = (patch: (m: Record<string, any>) => void) => {
      const copy = JSON.parse(JSON.stringify(manifest));
      patch(copy);
      return () => parseManifest(copy);
    };
    expect(broken((m) => delete m.kernel.version)).toThrow(/field 'kernel.version'/);
    expect(broken((m) => (m.files.systemMap.sha256 = 'xyz'))).toThrow(/field 'files.systemMap.sha256'/);
    expect(broken((m) => delete m.files.initramfs)).toThrow(/field 'files.initramfs' is missing/);
    expect(broken((m) => (m.workloads = ['dance']))).toThrow(/field 'workloads'/);
    expect(broken((m) => (m.files.vmlinuz.file = '../etc/passwd'))).toThrow(/files.vmlinuz.file/);
    expect(broken((m) => (m.schema = 99))).toThrow(/field 'schema'/);
  });

  it('detects a corrupted file by its sha256 even when its size is unchanged', async () => {
    await writeImage();
    const file = path.join(dir, 'System.map');
    const bytes = fs.readFileSync(file);
    bytes[0] = bytes[0]! ^ 0xff;
    fs.writeFileSync(file, bytes);
    const check = await checkImage(dir);
    expect(check.ok).toBe(false);
    if (!check.ok) expect(check.reason).toMatch(/System.map sha256/);
  });

  it('detects missing files, truncation and an unbuilt image', async () => {
    expect(await checkImage(dir)).toEqual({ ok: false, reason: 'not built' });
    await writeImage();
    fs.truncateSync(path.join(dir, 'config'), 3);
    expect(await checkImage(dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/config has 3 bytes/) });
    fs.rmSync(path.join(dir, 'vmlinuz'));
    expect(await checkImage(dir)).toMatchObject({ ok: false, reason: 'vmlinuz is missing' });
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{ not json');
    expect(await checkImage(dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/not valid JSON/) });
  });
});

async function writeSystemImage(): Promise<SystemImageManifest> {
  const files = { baseDisk: 'base.qcow2', vmlinuz: 'vmlinuz', initrd: 'initrd.img', systemMap: 'System.map', config: 'config' };
  for (const [key, file] of Object.entries(files)) fs.writeFileSync(path.join(dir, file), `content of ${key}\n`);
  const manifest: SystemImageManifest = {
    schema: 1,
    kind: 'system',
    name: 'debian-system',
    recipeHash: 'def',
    builtAt: new Date(0).toISOString(),
    kernelRelease: '6.1.0-57-cloud-amd64',
    kernel: { package: 'linux-image-6.1.0-57-cloud-amd64', version: '6.1.192-3' },
    debugPackage: { package: 'linux-image-6.1.0-57-cloud-amd64-dbg', version: '6.1.192-3' },
    suite: 'bookworm',
    sources: ['deb http://deb.debian.org/debian bookworm main'],
    requested: ['systemd-sysv', 'linux-image-6.1.0-57-cloud-amd64=6.1.192-3'],
    packages: [
      { package: 'libc6', version: '2.36-9+deb12u10', architecture: 'amd64' },
      { package: 'systemd', version: '252.39-1~deb12u1', architecture: 'amd64' },
    ],
    buildSource: {
      package: 'lua5.4',
      version: '5.4.4-3+deb12u1',
      dir: '/usr/src/lua5.4',
      build: 'make -C /usr/src/lua5.4 posix',
      clean: 'make -C /usr/src/lua5.4 clean',
    },
    pgbench: { database: 'pgbench', scale: 2 },
    kernelCommandLine: 'root=/dev/vda rw console=ttyS0',
    treeBytes: 950_000_000,
    fileSystemBytes: 4 << 30,
    files: {
      baseDisk: await fileRecord(dir, files.baseDisk),
      vmlinuz: await fileRecord(dir, files.vmlinuz),
      initrd: await fileRecord(dir, files.initrd),
      systemMap: await fileRecord(dir, files.systemMap),
      config: await fileRecord(dir, files.config),
    },
  };
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
  return manifest;
}

describe('system image manifest (the same format, kind: system)', () => {
  it('accepts a manifest it wrote and verifies every file, the base disk included', async () => {
    const manifest = await writeSystemImage();
    expect(parseSystemManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    expect(parseAnyManifest(JSON.parse(JSON.stringify(manifest)))).toEqual(manifest);
    const check = await checkSystemImage(dir);
    expect(check.ok).toBe(true);
    if (check.ok) expect(check.image.path('baseDisk')).toBe(path.join(dir, 'base.qcow2'));
    fs.appendFileSync(path.join(dir, 'base.qcow2'), 'x');
    expect(await checkSystemImage(dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/base.qcow2 has \d+ bytes/) });
  });

  it('names the offending field', async () => {
    const manifest = await writeSystemImage();
    // biome-ignore lint/suspicious/noExplicitAny: the tests patch any field of a manifest read from JSON
    const broken = (patch: (m: Record<string, any>) => void) => {
      const copy = JSON.parse(JSON.stringify(manifest));
      patch(copy);
      return () => parseSystemManifest(copy);
    };
    expect(broken((m) => delete m.kind)).toThrow(/field 'kind' must be 'system'/);
    expect(broken((m) => delete m.files.baseDisk)).toThrow(/field 'files.baseDisk' is missing/);
    expect(broken((m) => (m.files.initrd.sha256 = 'nope'))).toThrow(/field 'files.initrd.sha256'/);
    expect(broken((m) => delete m.packages[1].version)).toThrow(/field 'packages\[1\].version'/);
    expect(broken((m) => delete m.packages[0].architecture)).toThrow(/field 'packages\[0\].architecture'/);
    expect(broken((m) => (m.packages = []))).toThrow(/field 'packages' must be a non-empty list/);
    expect(broken((m) => m.packages.push({ ...m.packages[0] }))).toThrow(/field 'packages\[2\]' lists libc6:amd64 a second time/);
    expect(broken((m) => delete m.buildSource.version)).toThrow(/field 'buildSource.version'/);
    expect(broken((m) => (m.pgbench.scale = 0))).toThrow(/field 'pgbench.scale' must be at least 1/);
    expect(broken((m) => (m.treeBytes = -1))).toThrow(/field 'treeBytes'/);
    expect(broken((m) => (m.sources = []))).toThrow(/field 'sources'/);
    expect(broken((m) => (m.requested = ['']))).toThrow(/field 'requested\[0\]'/);
    expect(broken((m) => delete m.kernelCommandLine)).toThrow(/field 'kernelCommandLine'/);
    expect(broken((m) => (m.schema = 2))).toThrow(/field 'schema'/);
  });

  it('keeps the two kinds apart: neither reader takes the other kind', async () => {
    const system = await writeSystemImage();
    expect(() => parseManifest(JSON.parse(JSON.stringify(system)))).toThrow(/field 'kind' is "system": not a kernel \+ initramfs image/);
    expect(await checkImage(dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/field 'kind'/) });
    const kernel = await writeImage();
    expect(parseAnyManifest(JSON.parse(JSON.stringify(kernel)))).toEqual(kernel);
    expect(await checkSystemImage(dir)).toMatchObject({ ok: false, reason: expect.stringMatching(/field 'kind' must be 'system'/) });
  });
});
