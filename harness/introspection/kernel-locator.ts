/**
 * Finds a guest kernel in guest-physical memory and checks that a System.map belongs to it.
 *
 * Two routes to the placement (physical base of _text and the KASLR virtual offset):
 *  - hypervisor: the IDT base from vCPU registers, IDT entry 0 read through the vCPU's page tables, minus
 *    System.map's asm_exc_divide_error → virtual offset; the hypervisor translates _text → physical base.
 *  - memory only (no monitor needed, so Xen can use it too): the kernel image is physically contiguous and
 *    2 MiB aligned, so the base is the aligned address at which linux_banner's offset from _text holds the
 *    expected banner; IDT entry 0 read from idt_table's physical copy then gives the virtual offset.
 * Either way the placement is accepted only if (1) linux_banner, read from guest memory, is the banner of the
 * kernel build that was booted (from the bzImage header), and (2) every symbol of the kernel's own kallsyms
 * table sits where the System.map says (see kallsyms.ts: the banner alone cannot tell apart two builds that
 * happen to place it at the same address). A System.map of another kernel is refused.
 */
import { XmeError, errorMessage } from '../util/errors.ts';
import type { Guest } from '../backends/types.ts';
import { bannerMatches, type KernelVersion } from './bzimage.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { KernelInfo } from './kernel-info.ts';
import { checkKallsyms, type KallsymsCheck } from './kallsyms.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { readPhysical } from '../backends/guest-memory.ts';
import { PAGE_SIZE } from '../vocabulary.ts';

/** The System.map (or the placement) does not fit the running guest. */
export class KernelMismatchError extends XmeError {
  constructor(
    readonly guestId: string,
    detail: string,
  ) {
    super(
      `System.map does not match the kernel running in guest ${guestId}: ${detail}`,
      'use the System.map of the exact kernel build the guest boots (xme image build --force rebuilds it)',
    );
  }
}

const TWO_MIB = 2n * 1024n * 1024n;
const BANNER_BYTES = 256;

/** The handler address in a 16-byte x86-64 interrupt gate descriptor. */
export function gateHandler(descriptor: Buffer): bigint {
  const low = descriptor.readBigUInt64LE(0);
  const high = descriptor.readBigUInt64LE(8);
  return (low & 0xffffn) | (((low >> 48n) & 0xffffn) << 16n) | ((high & 0xffffffffn) << 32n);
}

function virtualOffsetFromGate(guestId: string, layout: KernelLayout, descriptor: Buffer): bigint {
  const offset = gateHandler(descriptor) - layout.divideErrorHandler;
  // x86-64 KASLR slides the image by a multiple of 2 MiB within 1 GiB; anything else is a wrong System.map.
  if (offset < 0n || offset >= 1n << 30n || offset % TWO_MIB !== 0n) {
    throw new KernelMismatchError(guestId, `IDT entry 0 points to 0x${gateHandler(descriptor).toString(16)}, not to a KASLR slide of asm_exc_divide_error`);
  }
  return offset;
}

export function readBanner(guest: Guest, layout: KernelLayout, placement: KernelPlacement): string {
  const address = placement.physicalBase + (layout.linuxBanner - layout.text);
  const bytes = readPhysical(guest, address, BANNER_BYTES);
  const nul = bytes.indexOf(0);
  return bytes.toString('latin1', 0, nul < 0 ? bytes.length : nul).replace(/\n$/, '');
}

/** Throws KernelMismatchError unless linux_banner at the placement is this kernel build's banner. */
export function verifyBanner(guest: Guest, layout: KernelLayout, placement: KernelPlacement, version: KernelVersion): string {
  const banner = readBanner(guest, layout, placement);
  if (!bannerMatches(banner, version)) {
    throw new KernelMismatchError(
      guest.id,
      `linux_banner reads ${JSON.stringify(banner.slice(0, 100))}, expected "Linux version ${version.release} … ${version.buildTag}"`,
    );
  }
  return banner;
}

/** Memory-only route: no hypervisor call at all. */
export function locateKernelInMemory(guest: Guest, kernel: KernelInfo): KernelPlacement {
  const { layout, version } = kernel;
  const bannerOffset = layout.linuxBanner - layout.text;
  const imageBytes = layout.end - layout.text;
  const memoryBytes = BigInt(guest.memoryPages * PAGE_SIZE);
  const prefix = Buffer.from(`Linux version ${version.release} `, 'latin1');
  for (let base = 0n; base + imageBytes <= memoryBytes; base += TWO_MIB) {
    const at = readPhysical(guest, base + bannerOffset, prefix.length);
    if (!at.equals(prefix)) continue;
    const descriptor = readPhysical(guest, base + (layout.idtTable - layout.text), 16);
    const placement: KernelPlacement = {
      physicalBase: base,
      virtualOffset: virtualOffsetFromGate(guest.id, layout, descriptor),
      route: 'memory',
    };
    verifyPlacement(guest, kernel, placement);
    return placement;
  }
  throw new KernelMismatchError(guest.id, `no 2 MiB-aligned placement has "Linux version ${version.release}" at linux_banner's offset from _text`);
}

/** Hypervisor route: registers, virtual reads and translation asked of the backend (Guest.vcpu; QMP on QEMU). */
export async function locateKernelByHypervisor(guest: Guest, kernel: KernelInfo): Promise<KernelPlacement> {
  const { layout } = kernel;
  const { vcpu } = guest;
  if (!vcpu) throw new XmeError(`guest ${guest.id}: this backend cannot read vCPU state, so the hypervisor route cannot locate its kernel`);
  const idt = await vcpu.idtBase();
  const descriptor = await vcpu.readVirtual(idt, 16);
  const virtualOffset = virtualOffsetFromGate(guest.id, layout, descriptor);
  let physicalBase: bigint;
  try {
    physicalBase = await vcpu.translate(layout.text + virtualOffset);
  } catch (error) {
    throw new KernelMismatchError(guest.id, `_text + offset does not translate: ${errorMessage(error)}`);
  }
  const placement: KernelPlacement = { physicalBase, virtualOffset, route: 'hypervisor' };
  verifyPlacement(guest, kernel, placement);
  return placement;
}

/** Throws KernelMismatchError unless the kernel's own kallsyms agree with the System.map, symbol by symbol. */
export function verifyKallsyms(guest: Guest, kernel: KernelInfo, placement: KernelPlacement): number {
  let check: KallsymsCheck;
  try {
    check = checkKallsyms(guest, kernel.systemMap, kernel.layout, placement);
  } catch (error) {
    throw new KernelMismatchError(guest.id, `the kernel's symbol table (kallsyms) cannot be read where System.map puts it: ${errorMessage(error)}`);
  }
  if (check.matching !== check.symbols) {
    throw new KernelMismatchError(
      guest.id,
      `the kernel's own symbol table (kallsyms) disagrees with System.map on ${check.symbols - check.matching} of ${check.symbols} symbols ` +
        `(e.g. ${check.examples.join(', ')})`,
    );
  }
  return check.symbols;
}

/** Banner, then kallsyms: both must fit the booted build. */
function verifyPlacement(guest: Guest, kernel: KernelInfo, placement: KernelPlacement): void {
  verifyBanner(guest, kernel.layout, placement, kernel.version);
  verifyKallsyms(guest, kernel, placement);
}

/** Guest-physical address of a kernel-image virtual address (System.map address + KASLR slide). */
export function kernelImagePhysical(layout: KernelLayout, placement: KernelPlacement, systemMapAddress: bigint): bigint {
  if (systemMapAddress < layout.text || systemMapAddress >= layout.end) {
    throw new RangeError(`0x${systemMapAddress.toString(16)} is outside the kernel image`);
  }
  return placement.physicalBase + (systemMapAddress - layout.text);
}
