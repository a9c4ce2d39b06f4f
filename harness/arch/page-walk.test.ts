/** Page-walk logic on hand-built page tables; against a real guest: page-walk.e2e.test.ts (QEMU gva2gpa). */
import { describe, expect, it } from 'vitest';
import { PageWalkError, readVirtualByWalk, translateVirtual, walkPageTables } from './page-walk.ts';

/** A sparse guest-physical memory of 8-byte entries and data. */
function memory(entries: Record<string, bigint>, data: Record<string, Buffer> = {}) {
  return (address: bigint, length: number): Buffer => {
    const out = Buffer.alloc(length);
    for (const [at, bytes] of Object.entries(data)) {
      const start = BigInt(at);
      for (let i = 0; i < length; i++) {
        const offset = address + BigInt(i) - start;
        if (offset >= 0n && offset < BigInt(bytes.length)) out[i] = bytes[Number(offset)]!;
      }
    }
    if (length === 8 && entries[address.toString()] !== undefined) out.writeBigUInt64LE(entries[address.toString()]!);
    return out;
  };
}

const va = 0xffffffff81234567n; // PML4 511, PDPT 510, PD 9, PT 0x34
const indexes = { pml4: 511n, pdpt: 510n, pd: 9n, pt: 0x34n };

describe('x86-64 page walk', () => {
  it('follows 4 levels down to a 4 KiB page', () => {
    const read = memory({
      [(0x1000n + indexes.pml4 * 8n).toString()]: 0x2000n | 0x63n,
      [(0x2000n + indexes.pdpt * 8n).toString()]: 0x3000n | 0x63n,
      [(0x3000n + indexes.pd * 8n).toString()]: 0x4000n | 0x63n,
      [(0x4000n + indexes.pt * 8n).toString()]: 0x8000000000abc000n | 0x163n, // NX bit set: must be masked off
    });
    expect(walkPageTables(read, 0x1000n | 0x5n /* PCID bits */, va)).toBe(0xabc567n);
  });

  it('stops at a 2 MiB page (PS in the PD entry)', () => {
    const read = memory({
      [(0x1000n + indexes.pml4 * 8n).toString()]: 0x2000n | 0x63n,
      [(0x2000n + indexes.pdpt * 8n).toString()]: 0x3000n | 0x63n,
      [(0x3000n + indexes.pd * 8n).toString()]: 0x1200000n | 0xe3n,
    });
    expect(walkPageTables(read, 0x1000n, va)).toBe(0x1200000n + (va & 0x1fffffn));
  });

  it('stops at a 1 GiB page (PS in the PDPT entry)', () => {
    const read = memory({
      [(0x1000n + indexes.pml4 * 8n).toString()]: 0x2000n | 0x63n,
      [(0x2000n + indexes.pdpt * 8n).toString()]: 0x40000000n | 0xe3n,
    });
    expect(walkPageTables(read, 0x1000n, va)).toBe(0x40000000n + (va & 0x3fffffffn));
  });

  it('says where the walk stopped when an entry is not present', () => {
    const read = memory({ [(0x1000n + indexes.pml4 * 8n).toString()]: 0x2000n | 0x63n });
    expect(() => walkPageTables(read, 0x1000n, va)).toThrow(PageWalkError);
    expect(() => walkPageTables(read, 0x1000n, va)).toThrow(/PDPT entry 510 not present/);
  });

  it('reads across a page boundary through two different frames', () => {
    const start = 0xffffffff81000ffen;
    const read = memory(
      {
        [(0x1000n + 511n * 8n).toString()]: 0x2000n | 0x63n,
        [(0x2000n + 510n * 8n).toString()]: 0x3000n | 0x63n,
        [(0x3000n + 8n * 8n).toString()]: 0x4000n | 0x63n,
        [(0x4000n + 0n * 8n).toString()]: 0x10000n | 0x63n,
        [(0x4000n + 1n * 8n).toString()]: 0x50000n | 0x63n,
      },
      { [String(0x10ffe)]: Buffer.from('ab'), [String(0x50000)]: Buffer.from('cd') },
    );
    expect(readVirtualByWalk(read, 0x1000n, start, 4).toString()).toBe('abcd');
  });
});

describe('translation with the mapping page size', () => {
  it('tells a 2 MiB mapping from a 4 KiB one', () => {
    const read = memory({
      [(0x1000n + indexes.pml4 * 8n).toString()]: 0x2000n | 0x63n,
      [(0x2000n + indexes.pdpt * 8n).toString()]: 0x3000n | 0x63n,
      [(0x3000n + indexes.pd * 8n).toString()]: 0x1200000n | 0xe3n,
      [(0x3000n + (indexes.pd + 1n) * 8n).toString()]: 0x4000n | 0x63n,
      [(0x4000n + 0x34n * 8n).toString()]: 0xabc000n | 0x63n,
    });
    expect(translateVirtual(read, 0x1000n, va)).toEqual({ physical: 0x1234567n, pageBytes: 0x200000n });
    expect(translateVirtual(read, 0x1000n, va + 0x200000n)).toEqual({ physical: 0xabc567n, pageBytes: 4096n });
  });
});
