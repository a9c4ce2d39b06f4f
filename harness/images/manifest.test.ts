import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkImage, fileRecord, parseManifest, type ImageManifest } from './manifest.ts';

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
