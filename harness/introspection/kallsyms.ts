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

/**
 * The kallsyms tables as they sit in one guest's memory. Guests booted from one kernel build hold them
 * byte for byte alike (they are read-only data of the image; only kallsyms_relative_base is relocated, and it
 * is kept here with the KASLR slide removed), and tables alike decode to the same symbols.
 */
interface RawKallsyms {
  count: number;
  offsets: Buffer;
  /** kallsyms_relative_base less the guest's KASLR offset. */
  relativeBase: bigint;
  tokenIndex: Buffer;
  tokenTable: Buffer;
  names: Buffer;
}

function readRawKallsyms(guest: Guest, map: SystemMap, layout: KernelLayout, placement: KernelPlacement): RawKallsyms {
  const physical = (symbol: string) => placement.physicalBase + (map.address(symbol) - layout.text);
  const count = readPhysical(guest, physical('kallsyms_num_syms'), 4).readUInt32LE(0);
  if (count === 0 || count > MAX_SYMBOLS) throw new Error(`kallsyms_num_syms reads ${count}`);
  const tokenTableStart = map.address('kallsyms_token_table');
  // kallsyms_names ends where the next kallsyms object begins; bound the read by the markers' address.
  const namesStart = map.address('kallsyms_names');
  return {
    count,
    offsets: readPhysical(guest, physical('kallsyms_offsets'), count * 4),
    relativeBase: readPhysical(guest, physical('kallsyms_relative_base'), 8).readBigUInt64LE(0) - placement.virtualOffset,
    tokenIndex: readPhysical(guest, physical('kallsyms_token_index'), 512),
    tokenTable: readPhysical(guest, physical('kallsyms_token_table'), Number(map.address('kallsyms_token_index') - tokenTableStart)),
    names: readPhysical(guest, physical('kallsyms_names'), Number(map.address('kallsyms_markers') - namesStart)),
  };
}

const sameTables = (a: RawKallsyms, b: RawKallsyms): boolean =>
  a.count === b.count &&
  a.relativeBase === b.relativeBase &&
  a.offsets.equals(b.offsets) &&
  a.tokenIndex.equals(b.tokenIndex) &&
  a.tokenTable.equals(b.tokenTable) &&
  a.names.equals(b.names);

function decodeKallsyms({ count, offsets, relativeBase, tokenIndex, tokenTable, names }: RawKallsyms): KallsymsEntry[] {
  const tokens: string[] = [];
  for (let i = 0; i < 256; i++) {
    const start = tokenIndex.readUInt16LE(i * 2);
    const end = tokenTable.indexOf(0, start);
    if (start >= tokenTable.length || end < 0) throw new Error(`kallsyms token ${i} is outside the token table`);
    tokens.push(tokenTable.toString('latin1', start, end));
  }
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

/** Read and decode the guest kernel's kallsyms, at the places the System.map gives. */
export function readKallsyms(guest: Guest, map: SystemMap, layout: KernelLayout, placement: KernelPlacement): KallsymsEntry[] {
  return decodeKallsyms(readRawKallsyms(guest, map, layout, placement));
}

/**
 * Per System.map, the tables already decoded and compared, with the outcome. Decoding ~150,000 symbols and
 * looking each up takes ~100–250 ms; with 64 guests of one build that was most of semantic's first scan. A
 * guest whose own tables (read from its memory every time) equal a checked guest's byte for byte decodes to
 * the same symbols, so it gets the same outcome without decoding: the check stays per guest and exact.
 */
const checked = new WeakMap<SystemMap, { tables: RawKallsyms; check: KallsymsCheck }[]>();
/** Distinct tables remembered per map (guests of one build have one; a bound, not a tuning). */
const REMEMBERED_TABLES = 4;

/** The guest kernel's kallsyms compared with the System.map (see `checked` for why guests alike cost little). */
export function checkKallsyms(guest: Guest, map: SystemMap, layout: KernelLayout, placement: KernelPlacement): KallsymsCheck {
  const tables = readRawKallsyms(guest, map, layout, placement);
  const known = checked.get(map) ?? [];
  const same = known.find((entry) => sameTables(entry.tables, tables));
  if (same) return same.check;
  const check = compareWithSystemMap(decodeKallsyms(tables), map);
  known.unshift({ tables, check });
  known.length = Math.min(known.length, REMEMBERED_TABLES);
  checked.set(map, known);
  return check;
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
