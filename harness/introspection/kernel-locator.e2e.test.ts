/**
 * On real guests: both routes to the kernel's placement agree, with KASLR off and on; the System.map of
 * another real Debian kernel build is refused by both — even though that build has linux_banner, _text,
 * _etext and idt_table at the very same addresses (so only the kallsyms check can tell).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QemuBackend } from '../backends/qemu/qemu-backend.ts';
import type { Guest } from '../backends/types.ts';
import type { GuestImage } from '../images/manifest.ts';
import { otherSystemMap } from '../images/other-kernels.ts';
import { defaultImage } from '../testing/e2e.ts';
import { kernelInfo, type KernelInfo } from './kernel-info.ts';
import { KernelMismatchError, locateKernelByHypervisor, locateKernelInMemory, readBanner } from './kernel-locator.ts';
import { readPhysical } from '../backends/guest-memory.ts';
import { readVirtualByWalk, walkPageTables } from '../arch/page-walk.ts';
import type { QemuGuest } from '../backends/qemu/qemu-guest.ts';

let image: GuestImage;
let kernel: KernelInfo;
let backend: QemuBackend;
let plain: Guest[];
let randomized: Guest[];

beforeAll(async () => {
  image = await defaultImage();
  kernel = kernelInfo(image);
  backend = await QemuBackend.create();
  [plain, randomized] = await Promise.all([
    backend.provision(image, 1, { memoryMiB: 192, kaslr: false, workload: { name: 'idle' } }),
    backend.provision(image, 2, { memoryMiB: 192, kaslr: true, workload: { name: 'idle' } }),
  ]);
});
afterAll(async () => {
  await backend?.close();
});

describe('locating the kernel in a running guest', () => {
  it('finds the nokaslr kernel at 16 MiB with no virtual offset, by both routes', async () => {
    const guest = plain[0]!;
    const byMemory = locateKernelInMemory(guest, kernel);
    const byHypervisor = await locateKernelByHypervisor(guest, kernel);
    expect(byMemory).toEqual({ physicalBase: 0x1000000n, virtualOffset: 0n, route: 'memory' });
    expect(byHypervisor).toEqual({ physicalBase: 0x1000000n, virtualOffset: 0n, route: 'hypervisor' });
    expect(readBanner(guest, kernel.layout, byMemory)).toMatch(new RegExp(`^Linux version ${kernel.version.release} `));
  });

  it('agrees across routes under KASLR, with offsets that are 2 MiB multiples', async () => {
    for (const guest of randomized) {
      const byMemory = locateKernelInMemory(guest, kernel);
      const byHypervisor = await locateKernelByHypervisor(guest, kernel);
      expect(byHypervisor.physicalBase).toBe(byMemory.physicalBase);
      expect(byHypervisor.virtualOffset).toBe(byMemory.virtualOffset);
      expect(byMemory.physicalBase % 0x200000n).toBe(0n);
      expect(byMemory.virtualOffset % 0x200000n).toBe(0n);
    }
    // Two randomized guests landing on the same physical and virtual slots is possible but very unlikely.
    const placements = randomized.map((g) => locateKernelInMemory(g, kernel));
    const slides = placements.map((p) => `${p.physicalBase}/${p.virtualOffset}`);
    expect(slides.some((s) => s !== '16777216/0')).toBe(true);
  });

  it('refuses the System.map of another Debian kernel build, by both routes', async () => {
    const other = await otherSystemMap('cloud-amd64', image.manifest.kernel.package);
    const wrong = kernelInfo(image, other.file);
    expect(wrong.version).toEqual(kernel.version); // the booted build is still the image's
    expect(wrong.systemMap.source).not.toBe(kernel.systemMap.source);
    for (const guest of [...plain, ...randomized]) {
      expect(() => locateKernelInMemory(guest, wrong)).toThrow(KernelMismatchError);
      expect(() => locateKernelInMemory(guest, wrong)).toThrow(/System.map does not match the kernel running in guest g\d/);
      await expect(locateKernelByHypervisor(guest, wrong)).rejects.toThrow(KernelMismatchError);
    }
  }, 120_000);
});

describe('x86-64 page walk on real guests', () => {
  it('translates kernel addresses exactly as QEMU does (gva2gpa), with KASLR off and on', async () => {
    for (const guest of [...plain, ...randomized] as QemuGuest[]) {
      await guest.pause(); // CR3 and the tables must not change between the walk and QEMU's answer
      try {
        const registers = await guest.hmp('info registers');
        const cr3 = BigInt(`0x${/CR3=([0-9a-f]+)/.exec(registers)![1]}`);
        const placement = locateKernelInMemory(guest, kernel);
        const read = (address: bigint, length: number) => readPhysical(guest, address, length);
        const addresses = [
          kernel.layout.text + placement.virtualOffset,
          kernel.layout.linuxBanner + placement.virtualOffset,
          kernel.layout.idtTable + placement.virtualOffset,
          await guest.vcpu.idtBase(), // the CPU entry area: mapped separately from the kernel image
        ];
        for (const address of addresses) expect(walkPageTables(read, cr3, address)).toBe(await guest.vcpu.translate(address));
        const idt = await guest.vcpu.idtBase();
        expect(readVirtualByWalk(read, cr3, idt, 16).equals(await guest.vcpu.readVirtual(idt, 16))).toBe(true);
      } finally {
        await guest.resume();
      }
    }
  });
});
