/**
 * kallsyms as the kernel lays it out (kallsyms.ts header), crafted in guest memory: decoding, the check
 * against a System.map, and that a second guest with byte-identical tables gets the first's outcome while a
 * guest whose tables differ in one byte is decoded (and refused) on its own.
 */
import { describe, expect, it } from 'vitest';
import { MemoryGuest } from '../testing/memory-guest.ts';
import { checkKallsyms, readKallsyms } from './kallsyms.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { SystemMap } from './system-map.ts';

const TEXT = 0xffffffff81000000n;
const SYMBOLS = [
  { type: 'T', name: '_text', address: TEXT },
  { type: 'T', name: 'start_kernel', address: TEXT + 0x1000n },
  { type: 't', name: 'do_one_initcall', address: TEXT + 0x2040n },
];
// Where the tables sit, as offsets from _text (a real image has them in rodata).
const AT = { num: 0x10000n, offsets: 0x10100n, base: 0x10200n, names: 0x10300n, markers: 0x10400n, table: 0x10500n, index: 0x10800n };

function systemMap(): SystemMap {
  const lines = [...SYMBOLS.map((s) => `${s.address.toString(16)} ${s.type} ${s.name}`)];
  const named: [string, bigint][] = [
    ['kallsyms_num_syms', AT.num],
    ['kallsyms_offsets', AT.offsets],
    ['kallsyms_relative_base', AT.base],
    ['kallsyms_names', AT.names],
    ['kallsyms_markers', AT.markers],
    ['kallsyms_token_table', AT.table],
    ['kallsyms_token_index', AT.index],
  ];
  for (const [name, offset] of named) lines.push(`${(TEXT + offset).toString(16)} R ${name}`);
  return SystemMap.parse(`${lines.join('\n')}\n`);
}

/** One token per character (token i is the character i): simple and what the format allows. */
function writeTables(guest: MemoryGuest, physicalBase: number, virtualOffset: bigint): void {
  const at = (offset: bigint) => physicalBase + Number(offset);
  guest.ram.writeUInt32LE(SYMBOLS.length, at(AT.num));
  SYMBOLS.forEach((s, i) => guest.ram.writeInt32LE(-1 - Number(s.address - TEXT), at(AT.offsets) + i * 4));
  guest.ram.writeBigUInt64LE(TEXT + virtualOffset, at(AT.base)); // relocated by KASLR
  let names = at(AT.names);
  for (const s of SYMBOLS) {
    const text = `${s.type}${s.name}`;
    guest.ram[names++] = text.length;
    for (const char of text) guest.ram[names++] = char.charCodeAt(0);
  }
  for (let i = 0; i < 256; i++) {
    guest.ram[at(AT.table) + i * 2] = i;
    guest.ram[at(AT.table) + i * 2 + 1] = 0;
    guest.ram.writeUInt16LE(i * 2, at(AT.index) + i * 2);
  }
}

const layout = { text: TEXT } as KernelLayout;
const placementAt = (physicalBase: number, virtualOffset: bigint): KernelPlacement => ({ physicalBase: BigInt(physicalBase), virtualOffset, route: 'memory' });

describe('kallsyms', () => {
  it('decodes the symbols with the KASLR slide removed', () => {
    const guest = new MemoryGuest('g0', 32);
    writeTables(guest, 0, 0x2000000n);
    const entries = readKallsyms(guest, systemMap(), layout, placementAt(0, 0x2000000n));
    expect(entries).toEqual(SYMBOLS);
  });

  it('gives a guest with byte-identical tables the checked outcome, and checks a guest that differs by one byte anew', () => {
    const map = systemMap();
    const [a, b, c] = ['a', 'b', 'c'].map((id) => new MemoryGuest(id, 32));
    writeTables(a!, 0, 0n);
    writeTables(b!, 0, 0x4000000n); // another slide: the same tables once it is removed
    writeTables(c!, 0, 0n);
    c!.ram[Number(AT.names) + 2] = 'X'.charCodeAt(0); // "T_text" → "TXtext": a symbol the map does not have
    const first = checkKallsyms(a!, map, layout, placementAt(0, 0n));
    expect(first).toEqual({ symbols: 3, matching: 3, examples: [] });
    expect(checkKallsyms(b!, map, layout, placementAt(0, 0x4000000n))).toBe(first); // the same outcome object: not decoded again
    const other = checkKallsyms(c!, map, layout, placementAt(0, 0n));
    expect(other).toEqual({ symbols: 3, matching: 2, examples: [`Xtext at 0x${TEXT.toString(16)}`] });
    // A slide read wrongly (the relocated base no longer fits) is not mistaken for the checked tables either.
    expect(checkKallsyms(b!, map, layout, placementAt(0, 0n))).not.toBe(first);
  });
});
