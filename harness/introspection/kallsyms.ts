/**
 * The running kernel's own symbol table (kallsyms), read out of guest memory, to check a System.map against
 * it. linux_banner alone cannot tell two builds of one ABI apart when they put the banner at the same address
 * (Debian's 6.1.0-55 and -56 cloud kernels do: same _text, _etext, linux_banner, idt_table, yet ~22,000 symbols
 * moved). So a System.map is trusted only if the symbols the kernel itself lists sit where the map says.
 *
 * Format (kernel/kallsyms.c, CONFIG_KALLSYMS_BASE_RELATIVE with ABSOLUTE_PERCPU, as x86-64 builds it):
 *  kallsyms_num_syms (u32), kallsyms_offsets (s32[n]), kallsyms_relative_base (u64, relocated by KASLR),
 *  kallsyms_names: per symbol a length byte (two if ≥ 0x80) and that many token indexes; a token index goes
 *  through kallsyms_token_index (u16[256]) into kallsyms_token_table (NUL-terminated strings). The first
 *  expanded character is the symbol's type letter.
 */
import type { Guest } from '../backends/types.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { readPhysical } from '../backends/guest-memory.ts';
import type { SystemMap } from './system-map.ts';

export interface KallsymsEntry {
  name: string;
  type: string;
  /** Unrelocated address, comparable with System.map (KASLR slide removed). */
  address: bigint;
}

export interface KallsymsCheck {
  symbols: number;
  /** Symbols found in the System.map at the same address. */
  matching: number;
  /** A few that did not match, for the error message. */
  examples: string[];
}

const MAX_SYMBOLS = 1_000_000;

/** Read and decode the guest kernel's kallsyms, at the places the System.map gives. */
export function readKallsyms(guest: Guest, map: SystemMap, layout: KernelLayout, placement: KernelPlacement): KallsymsEntry[] {
  const physical = (symbol: string) => placement.physicalBase + (map.address(symbol) - layout.text);
  const count = readPhysical(guest, physical('kallsyms_num_syms'), 4).readUInt32LE(0);
  if (count === 0 || count > MAX_SYMBOLS) throw new Error(`kallsyms_num_syms reads ${count}`);
  const offsets = readPhysical(guest, physical('kallsyms_offsets'), count * 4);
  const relativeBase = readPhysical(guest, physical('kallsyms_relative_base'), 8).readBigUInt64LE(0) - placement.virtualOffset;
  const tokenIndex = readPhysical(guest, physical('kallsyms_token_index'), 512);
  const tokenTableStart = map.address('kallsyms_token_table');
  const tokenTable = readPhysical(guest, physical('kallsyms_token_table'), Number(map.address('kallsyms_token_index') - tokenTableStart));
  const tokens: string[] = [];
  for (let i = 0; i < 256; i++) {
    const start = tokenIndex.readUInt16LE(i * 2);
    const end = tokenTable.indexOf(0, start);
    if (start >= tokenTable.length || end < 0) throw new Error(`kallsyms token ${i} is outside the token table`);
    tokens.push(tokenTable.toString('latin1', start, end));
  }
  // kallsyms_names ends where the next kallsyms object begins; bound the read by the markers' address.
  const namesStart = map.address('kallsyms_names');
  const names = readPhysical(guest, physical('kallsyms_names'), Number(map.address('kallsyms_markers') - namesStart));

  const entries: KallsymsEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at >= names.length) throw new Error(`kallsyms_names ends before symbol ${i} of ${count}`);
    let length = names[at++]!;
    if (length & 0x80) length = (length & 0x7f) | (names[at++]! << 7);
    let expanded = '';
    for (let j = 0; j < length; j++) expanded += tokens[names[at + j]!];
    at += length;
    const offset = offsets.readInt32LE(i * 4);
    // Absolute per-CPU symbols are stored as non-negative offsets; the rest relative to the (relocated) base.
    const address = offset >= 0 ? BigInt(offset) : relativeBase - 1n - BigInt(offset);
    entries.push({ type: expanded.charAt(0), name: expanded.slice(1), address });
  }
  return entries;
}

/** Compare the kernel's kallsyms with a System.map. */
export function compareWithSystemMap(entries: KallsymsEntry[], map: SystemMap): KallsymsCheck {
  let matching = 0;
  const examples: string[] = [];
  for (const entry of entries) {
    if (map.hasAt(entry.name, entry.address)) matching++;
    else if (examples.length < 3) examples.push(`${entry.name} at 0x${entry.address.toString(16)}`);
  }
  return { symbols: entries.length, matching, examples };
}
