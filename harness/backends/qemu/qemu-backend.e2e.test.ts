/**
 * End to end: real Debian kernel, real QEMU (TCG), two identical guests; the harness reads their RAM and
 * finds the kernel's linux_banner where System.map says it is; teardown leaves nothing behind.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from './qemu-backend.ts';
import type { QemuGuest } from './qemu-guest.ts';
import { defaultImage, processRunning } from '../../testing/e2e.ts';
import type { GuestImage } from '../../images/manifest.ts';

/** With nokaslr the kernel image is mapped at __START_KERNEL_map + physical address. */
const START_KERNEL_MAP = 0xffffffff80000000n;

function symbol(image: GuestImage, name: string): bigint {
  const line = fs
    .readFileSync(image.path('systemMap'), 'utf8')
    .split('\n')
    .find((l) => l.endsWith(` ${name}`));
  if (!line) throw new Error(`${name} not in System.map`);
  return BigInt(`0x${line.split(' ')[0]}`);
}

let image: GuestImage;
let backend: QemuBackend;
let guests: QemuGuest[];

beforeAll(async () => {
  image = await defaultImage();
  backend = await QemuBackend.create({ accelerator: 'auto' });
  guests = (await backend.provision(image, 2, { memoryMiB: 256, kaslr: false, workload: { name: 'idle' } })) as QemuGuest[];
});
afterAll(async () => {
  await backend?.close();
});

describe('QEMU backend with real guests', () => {
  it('boots both guests with the image kernel and records the accelerator', () => {
    expect(guests).toHaveLength(2);
    for (const guest of guests) {
      expect(guest.alive()).toBe(true);
      expect(guest.bootMs).toBeGreaterThan(0);
      expect(guest.memoryPages).toBe(65536);
    }
    expect(['tcg', 'kvm']).toContain(backend.info().accelerator);
    expect(backend.info().acceleratorReason.length).toBeGreaterThan(0);
  });

  it('reads linux_banner from guest-physical memory at the address System.map gives (nokaslr)', () => {
    const banner = symbol(image, 'linux_banner');
    const physical = Number(banner - START_KERNEL_MAP);
    const expected = `Linux version ${image.manifest.kernelRelease} `;
    for (const guest of guests) {
      const gfn = Math.floor(physical / 4096);
      const offset = physical % 4096;
      const text = guest.pages(gfn, 2).toString('latin1', offset, offset + expected.length);
      expect(text).toBe(expected);
    }
  });

  it('agrees with QEMU on the translation of a kernel address (QMP gva2gpa)', async () => {
    const banner = symbol(image, 'linux_banner');
    for (const guest of guests) expect(await guest.vcpu.translate(banner)).toBe(banner - START_KERNEL_MAP);
  });

  it('pauses and resumes a guest: no progress while paused', async () => {
    const guest = guests[0]!;
    await guest.pause();
    const before = guest.console.progress().length;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const whilePaused = guest.console.progress().length;
    await guest.resume();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(whilePaused - before).toBeLessThanOrEqual(1); // at most a line already in flight
    expect(guest.console.progress().length).toBeGreaterThan(whilePaused);
  }, 15_000);

  it('close() kills every QEMU by PID and removes the RAM files and their directory; a second close is harmless', async () => {
    const dir = backend.runtimeDir!;
    const files = guests.flatMap((guest) => Object.values(guest.files));
    expect(files.some((file) => fs.existsSync(file))).toBe(true);
    await backend.close();
    await backend.close();
    for (const guest of guests) expect(processRunning(guest.pid)).toBe(false);
    for (const file of files) expect(fs.existsSync(file)).toBe(false);
    expect(fs.existsSync(dir)).toBe(false);
  });
});
