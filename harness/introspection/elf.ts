/**
 * The section table of a 64-bit little-endian ELF file (a vmlinux): enough to cut out one section by name.
 * Layout (the System V gABI, elf(5)): e_shoff @0x28 (u64), e_shentsize @0x3a, e_shnum @0x3c, e_shstrndx @0x3e
 * (u16 each); a section header (64 B) has sh_name @0 (u32, into the section-name string table), sh_type @4,
 * sh_addr @0x10, sh_offset @0x18, sh_size @0x20 (u64 each).
 */
import { XmeError } from '../util/errors.ts';

export interface ElfSection {
  name: string;
  type: number;
  /** Virtual address the section is loaded at. */
  address: bigint;
  offset: number;
  size: number;
}

const SHT_NOBITS = 8;

export function elfSections(file: Buffer, source = 'ELF file'): ElfSection[] {
  if (file.length < 64 || file.readUInt32BE(0) !== 0x7f454c46) throw new XmeError(`${source} is not an ELF file`);
  if (file[4] !== 2 || file[5] !== 1) throw new XmeError(`${source} is not a 64-bit little-endian ELF file`);
  const tableOffset = Number(file.readBigUInt64LE(0x28));
  const entrySize = file.readUInt16LE(0x3a);
  const count = file.readUInt16LE(0x3c);
  const namesIndex = file.readUInt16LE(0x3e);
  if (entrySize < 64 || tableOffset + count * entrySize > file.length || namesIndex >= count) {
    throw new XmeError(`${source}: the ELF section table lies outside the file (truncated?)`);
  }
  const raw = Array.from({ length: count }, (_, i) => {
    const at = tableOffset + i * entrySize;
    return {
      nameOffset: file.readUInt32LE(at),
      type: file.readUInt32LE(at + 4),
      address: file.readBigUInt64LE(at + 0x10),
      offset: Number(file.readBigUInt64LE(at + 0x18)),
      size: Number(file.readBigUInt64LE(at + 0x20)),
    };
  });
  const names = raw[namesIndex]!;
  return raw.map((section) => {
    const start = names.offset + section.nameOffset;
    const end = file.indexOf(0, start);
    if (start >= file.length || end < 0) throw new XmeError(`${source}: an ELF section name lies outside the file`);
    if (section.type !== SHT_NOBITS && section.offset + section.size > file.length) {
      throw new XmeError(`${source}: ELF section ${file.toString('latin1', start, end)} runs past the end of the file`);
    }
    return { name: file.toString('latin1', start, end), type: section.type, address: section.address, offset: section.offset, size: section.size };
  });
}

/** The bytes of a named section, or undefined if the file has none by that name. */
export function elfSection(file: Buffer, name: string, source?: string): Buffer | undefined {
  const section = elfSections(file, source).find((s) => s.name === name);
  return section ? file.subarray(section.offset, section.offset + section.size) : undefined;
}
