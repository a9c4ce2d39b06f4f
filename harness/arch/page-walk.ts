/**
 * x86-64 4-level page walk over guest-physical memory: kernel virtual → guest physical, from a vCPU's CR3.
 * Used where the hypervisor gives registers but no translation call (Xen: CR3 from the HVM CPU context);
 * on QEMU it is checked against QMP's own gva2gpa.
 */
const PRESENT = 1n;
const PAGE_SIZE_BIT = 1n << 7n;
const ADDRESS_MASK = 0x000ffffffffff000n;

export type PhysicalReader = (address: bigint, length: number) => Buffer;

export class PageWalkError extends Error {}

/** A translation and the size of the page that maps it (4 KiB, 2 MiB or 1 GiB). */
export interface Translation {
  physical: bigint;
  pageBytes: bigint;
}

/** Translate `virtual` through the page tables at `cr3`; throws PageWalkError if it is not mapped. */
export function walkPageTables(read: PhysicalReader, cr3: bigint, virtual: bigint): bigint {
  return translateVirtual(read, cr3, virtual).physical;
}

/** As walkPageTables, also telling how large the mapping page is (so callers can translate a page at a time). */
export function translateVirtual(read: PhysicalReader, cr3: bigint, virtual: bigint): Translation {
  let table = cr3 & ADDRESS_MASK;
  // [shift of this level's index, name, does a set PS bit end the walk here (and the page size)]
  const levels: [bigint, string, bigint | undefined][] = [
    [39n, 'PML4', undefined],
    [30n, 'PDPT', 1n << 30n],
    [21n, 'PD', 1n << 21n],
    [12n, 'PT', undefined],
  ];
  for (const [shift, name, largePage] of levels) {
    const index = (virtual >> shift) & 0x1ffn;
    const entry = read(table + index * 8n, 8).readBigUInt64LE(0);
    if ((entry & PRESENT) === 0n) {
      throw new PageWalkError(`0x${virtual.toString(16)} is not mapped (${name} entry ${index} not present)`);
    }
    if (largePage !== undefined && (entry & PAGE_SIZE_BIT) !== 0n) {
      return { physical: (entry & ADDRESS_MASK & ~(largePage - 1n)) | (virtual & (largePage - 1n)), pageBytes: largePage };
    }
    table = entry & ADDRESS_MASK;
  }
  return { physical: table | (virtual & 0xfffn), pageBytes: 4096n };
}

/** Bytes at a virtual address, page by page (virtually contiguous is not physically contiguous). */
export function readVirtualByWalk(read: PhysicalReader, cr3: bigint, virtual: bigint, length: number): Buffer {
  const parts: Buffer[] = [];
  let address = virtual;
  let remaining = length;
  while (remaining > 0) {
    const inPage = Math.min(remaining, 4096 - Number(address & 0xfffn));
    parts.push(read(walkPageTables(read, cr3, address), inPage));
    address += BigInt(inPage);
    remaining -= inPage;
  }
  return Buffer.concat(parts);
}
