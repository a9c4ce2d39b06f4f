/**
 * A guest kernel's virtual memory, read from outside through guest-physical memory: its symbols (System.map +
 * the located placement), and any kernel virtual address — the image by its placement, the direct map by
 * page_offset_base, anything else (vmemmap, vmalloc, modules) by walking the kernel's own page tables
 * (init_top_pgt) over guest memory. page_offset_base and vmemmap_base are variables that KASLR randomises
 * (CONFIG_RANDOMIZE_MEMORY), so they are read from the guest, never assumed. 5-level paging is refused.
 *
 * Every address that does not translate, or that translates outside guest memory, is a PageClassRefusal
 * naming the guest and the check: what reads through here must never be taken on trust.
 */
import type { Guest } from '../backends/types.ts';
import { PageWalkError, translateVirtual } from '../arch/page-walk.ts';
import { XmeError } from '../util/errors.ts';
import { PAGE_SIZE } from '../vocabulary.ts';
import type { KernelInfo } from './kernel-info.ts';
import type { KernelPlacement } from './kernel-placement.ts';

const PAGE = BigInt(PAGE_SIZE);

/** Page classes cannot be given for this guest: the check that failed, and why. A wrong class is never used. */
export class PageClassRefusal extends XmeError {
  constructor(
    readonly guestId: string,
    /** A short name of the check, e.g. "vmemmap", "VMCOREINFO", "struct page pointer". */
    readonly check: string,
    detail: string,
    hint?: string,
  ) {
    super(`guest ${guestId}: page classes refused (${check}): ${detail}`, hint);
    this.name = 'PageClassRefusal';
  }
}

const hex = (value: bigint) => `0x${value.toString(16)}`;

export class KernelMemory {
  /** Guest-physical address of init_top_pgt, the kernel's top-level page table (what CR3 holds in kernel mode). */
  readonly topPageTable: bigint;
  readonly pageOffsetBase: bigint;
  readonly vmemmapBase: bigint;
  private readonly memoryBytes: bigint;
  private readonly imageStart: bigint;
  private readonly imageEnd: bigint;
  /** Translations of pages outside the image and the direct map, by virtual page (the walk's own page size). */
  private readonly walked = new Map<bigint, { virtualBase: bigint; physicalBase: bigint; bytes: bigint }>();

  private constructor(
    readonly guest: Guest,
    readonly kernel: KernelInfo,
    readonly placement: KernelPlacement,
  ) {
    this.memoryBytes = BigInt(guest.memoryPages) * PAGE;
    this.imageStart = kernel.layout.text + placement.virtualOffset;
    this.imageEnd = kernel.layout.end + placement.virtualOffset;
    this.topPageTable = this.symbolPhysical('init_top_pgt');
    this.pageOffsetBase = 0n;
    this.vmemmapBase = 0n;
  }

  /** Read the guest kernel's memory layout variables; refuses 5-level paging. */
  static open(guest: Guest, kernel: KernelInfo, placement: KernelPlacement): KernelMemory {
    const memory = new KernelMemory(guest, kernel, placement);
    const l5 = memory.physicalBytes(memory.symbolPhysical('__pgtable_l5_enabled'), 4, '__pgtable_l5_enabled').readUInt32LE(0);
    if (l5 !== 0) {
      throw new PageClassRefusal(
        guest.id,
        '5-level paging',
        'the guest kernel runs with 5-level page tables (la57), which this page walk does not follow',
        'boot it on a CPU model without la57 or with no5lvl',
      );
    }
    const variable = (name: string) => memory.physicalBytes(memory.symbolPhysical(name), 8, name).readBigUInt64LE(0);
    const writable = memory as { pageOffsetBase: bigint; vmemmapBase: bigint };
    writable.pageOffsetBase = variable('page_offset_base');
    writable.vmemmapBase = variable('vmemmap_base');
    for (const [name, value] of [
      ['page_offset_base', memory.pageOffsetBase],
      ['vmemmap_base', memory.vmemmapBase],
    ] as const) {
      // Both lie in the kernel half, 1 GiB aligned (PUD-aligned regions of the randomised layout).
      if (value < 0xff00000000000000n || value % (1n << 30n) !== 0n)
        throw new PageClassRefusal(guest.id, 'memory layout', `${name} reads ${hex(value)}, not a kernel region base`);
    }
    return memory;
  }

  /** Guest-physical address of a System.map symbol of the image. */
  symbolPhysical(name: string): bigint {
    const address = this.kernel.systemMap.address(name);
    const { layout } = this.kernel;
    if (address < layout.text || address >= layout.end)
      throw new PageClassRefusal(this.guest.id, 'symbol', `${name} (${hex(address)}) is outside the kernel image`);
    return this.placement.physicalBase + (address - layout.text);
  }

  /** Relocated virtual address of a System.map symbol. */
  symbolVirtual(name: string): bigint {
    return this.kernel.systemMap.address(name) + this.placement.virtualOffset;
  }

  symbolBytes(name: string, length: number): Buffer {
    return this.physicalBytes(this.symbolPhysical(name), length, name);
  }

  /** Bytes at a guest-physical address (a copy); outside guest memory is a refusal naming `what`. */
  physicalBytes(address: bigint, length: number, what: string): Buffer {
    if (address < 0n || address + BigInt(length) > this.memoryBytes) {
      throw new PageClassRefusal(
        this.guest.id,
        'pointer',
        `${what} at guest-physical ${hex(address)}+${length} lies outside guest memory (${this.guest.memoryPages} pages)`,
      );
    }
    const first = Number(address / PAGE);
    const offset = Number(address % PAGE);
    const pages = Math.ceil((offset + length) / PAGE_SIZE);
    return Buffer.from(this.guest.pages(first, pages).subarray(offset, offset + length));
  }

  /** Copy bytes at a guest-physical address into `target` (no intermediate copy); outside guest memory is a refusal. */
  copyPhysical(address: bigint, length: number, target: Buffer, targetOffset: number, what: string): void {
    if (address < 0n || address + BigInt(length) > this.memoryBytes) {
      throw new PageClassRefusal(
        this.guest.id,
        'pointer',
        `${what} at guest-physical ${hex(address)}+${length} lies outside guest memory (${this.guest.memoryPages} pages)`,
      );
    }
    const first = Number(address / PAGE);
    const offset = Number(address % PAGE);
    this.guest.pages(first, Math.ceil((offset + length) / PAGE_SIZE)).copy(target, targetOffset, offset, offset + length);
  }

  /** True if guest memory at a guest-physical address holds `source[sourceOffset, + length)`: compared in place, nothing copied. */
  equalsPhysical(address: bigint, length: number, source: Buffer, sourceOffset: number): boolean {
    if (address < 0n || address + BigInt(length) > this.memoryBytes) return false;
    const first = Number(address / PAGE);
    const offset = Number(address % PAGE);
    const view = this.guest.pages(first, Math.ceil((offset + length) / PAGE_SIZE));
    return view.compare(source, sourceOffset, sourceOffset + length, offset, offset + length) === 0;
  }

  /**
   * Guest-physical address of `length` bytes at a kernel virtual address in the direct map (slab objects:
   * inodes, address spaces), as a number; −1 if they are not all in it.
   */
  directMapPhysical(virtual: bigint, length: number): number {
    if (virtual < this.pageOffsetBase || virtual + BigInt(length) > this.pageOffsetBase + this.memoryBytes) return -1;
    return Number(virtual - this.pageOffsetBase);
  }

  /**
   * True if guest memory at a guest-physical address (a number, from directMapPhysical) holds `source`, compared
   * in place: in `all` (the guest's whole-memory view, Guest.memoryView, taken once by the caller) if given.
   */
  equalsAt(physical: number, source: Buffer, all: Buffer | undefined): boolean {
    if (all) return all.compare(source, 0, source.length, physical, physical + source.length) === 0;
    return this.equalsPhysical(BigInt(physical), source.length, source, 0);
  }

  /** Guest-physical address of a kernel virtual address, or a refusal naming `what` points there. */
  physical(virtual: bigint, what: string): bigint {
    if (virtual >= this.imageStart && virtual < this.imageEnd) return this.placement.physicalBase + (virtual - this.imageStart);
    if (virtual >= this.pageOffsetBase && virtual < this.pageOffsetBase + this.memoryBytes) return virtual - this.pageOffsetBase;
    const page = virtual & ~(PAGE - 1n);
    let known = this.walked.get(page);
    if (!known) {
      let translation: { physical: bigint; pageBytes: bigint };
      try {
        translation = translateVirtual((address, length) => this.physicalBytes(address, length, 'a page-table entry'), this.topPageTable, virtual);
      } catch (error) {
        if (error instanceof PageWalkError)
          throw new PageClassRefusal(this.guest.id, 'pointer', `${what} points to ${hex(virtual)}, which the kernel's page tables do not map`);
        throw error;
      }
      const virtualBase = virtual & ~(translation.pageBytes - 1n);
      known = { virtualBase, physicalBase: translation.physical - (virtual - virtualBase), bytes: translation.pageBytes };
      this.walked.set(page, known);
    }
    const physical = known.physicalBase + (virtual - known.virtualBase);
    if (physical >= this.memoryBytes)
      throw new PageClassRefusal(
        this.guest.id,
        'pointer',
        `${what} points to ${hex(virtual)}, mapped at guest-physical ${hex(physical)}, outside guest memory`,
      );
    return physical;
  }

  /** The mapping that covers a virtual address: its physical start and how many bytes from `virtual` it covers. */
  mapping(virtual: bigint, what: string): { physical: bigint; bytes: number } {
    const physical = this.physical(virtual, what);
    if (virtual >= this.imageStart && virtual < this.imageEnd) return { physical, bytes: Number(this.imageEnd - virtual) };
    if (virtual >= this.pageOffsetBase && virtual < this.pageOffsetBase + this.memoryBytes) return { physical, bytes: Number(this.memoryBytes - physical) };
    const known = this.walked.get(virtual & ~(PAGE - 1n))!;
    return { physical, bytes: Number(known.virtualBase + known.bytes - virtual) };
  }

  /** Bytes at a kernel virtual address, mapping by mapping. */
  read(virtual: bigint, length: number, what: string): Buffer {
    const parts: Buffer[] = [];
    let at = virtual;
    let remaining = length;
    while (remaining > 0) {
      const { physical, bytes } = this.mapping(at, what);
      const take = Math.min(remaining, bytes);
      parts.push(this.physicalBytes(physical, take, what));
      at += BigInt(take);
      remaining -= take;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** True if the kernel's memory at `virtual` holds `source` (compared in place); false too where it does not translate. */
  equalsVirtual(virtual: bigint, source: Buffer): boolean {
    let at = virtual;
    let done = 0;
    while (done < source.length) {
      let mapped: { physical: bigint; bytes: number };
      try {
        mapped = this.mapping(at, 'a comparison');
      } catch (error) {
        if (error instanceof PageClassRefusal) return false;
        throw error;
      }
      const take = Math.min(source.length - done, mapped.bytes);
      if (!this.equalsPhysical(mapped.physical, take, source, done)) return false;
      at += BigInt(take);
      done += take;
    }
    return true;
  }

  u64(virtual: bigint, what: string): bigint {
    return this.read(virtual, 8, what).readBigUInt64LE(0);
  }

  u32(virtual: bigint, what: string): number {
    return this.read(virtual, 4, what).readUInt32LE(0);
  }

  /** A NUL-terminated string of at most `max` bytes (cut there if longer). */
  cString(virtual: bigint, what: string, max = 64): string {
    // Read within the page first: a string near a page end must not make a read fault past a mapping.
    const inPage = Math.min(max, Number(PAGE - (virtual % PAGE)));
    let bytes = this.read(virtual, inPage, what);
    let end = bytes.indexOf(0);
    if (end < 0 && inPage < max) {
      bytes = Buffer.concat([bytes, this.read(virtual + BigInt(inPage), max - inPage, what)]);
      end = bytes.indexOf(0);
    }
    return bytes.toString('latin1', 0, end < 0 ? bytes.length : end);
  }
}
