/**
 * A reader of BTF, the kernel's own compact type information (the .BTF section of vmlinux, also in the
 * running kernel's rodata between __start_BTF and __stop_BTF). Format (Documentation/bpf/btf.rst):
 *  - header: magic 0xeB9F (u16), version 1 (u8), flags (u8), hdr_len (u32), then type_off, type_len, str_off,
 *    str_len (u32 each), offsets counted from the end of the header.
 *  - strings: NUL-terminated, referred to by byte offset; offset 0 is the empty name.
 *  - types: one record after another, type id 1 first (id 0 is void). A record is name_off (u32), info (u32:
 *    vlen bits 0–15, kind bits 24–28, kind_flag bit 31) and size-or-type (u32), then kind-specific data:
 *    INT a u32 (encoding bits 24–27: signed 1, char 2, bool 4; bit offset 16–23; bits 0–7); ARRAY type,
 *    index type, element count (u32 each); STRUCT/UNION vlen members of name_off, type, offset (bit offset; with
 *    kind_flag set, bits 24–31 are a bitfield's size and 0–23 the bit offset); ENUM vlen of name_off and a 32-bit
 *    value (signed if kind_flag); ENUM64 vlen of name_off, low and high 32 bits; FUNC_PROTO vlen of name_off and
 *    type; VAR a u32 linkage; DATASEC vlen of type, offset, size; DECL_TAG a s32 component index; PTR, FWD,
 *    TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG nothing more.
 * The reader keeps every type and answers the questions introspection asks: a struct's size and the offset
 * of a member by path ("compound_head", "i_mtime.tv_sec"), anonymous structs and unions flattened as C
 * allows; enum values by name; the size of any type.
 */
import { XmeError } from '../util/errors.ts';

export const BTF_MAGIC = 0xeb9f;
const HEADER_BYTES = 24;
/** x86-64: BTF does not record pointer sizes. */
const POINTER_BYTES = 8;

export const BTF_KINDS = [
  'void',
  'int',
  'ptr',
  'array',
  'struct',
  'union',
  'enum',
  'fwd',
  'typedef',
  'volatile',
  'const',
  'restrict',
  'func',
  'func_proto',
  'var',
  'datasec',
  'float',
  'decl_tag',
  'type_tag',
  'enum64',
] as const;
export type BtfKind = (typeof BTF_KINDS)[number];

export interface BtfMember {
  name: string;
  type: number;
  bitOffset: number;
  /** 0 unless a bitfield. */
  bitSize: number;
}

export interface BtfType {
  id: number;
  kind: BtfKind;
  name: string;
  /** INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC: bytes. */
  size?: number;
  /** PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG, FUNC, FUNC_PROTO (return), VAR, DECL_TAG: referenced type. */
  type?: number;
  kindFlag: boolean;
  vlen: number;
  int?: { bits: number; bitOffset: number; signed: boolean; char: boolean; bool: boolean };
  array?: { elementType: number; indexType: number; count: number };
  members?: BtfMember[];
  enumerators?: { name: string; value: bigint }[];
  params?: { name: string; type: number }[];
  /** DATASEC: variables and where they lie in the section. */
  variables?: { type: number; offset: number; size: number }[];
  /** DECL_TAG: −1 for the declaration itself, else the member or parameter index. */
  componentIndex?: number;
}

/** One member of a struct, at a path that may go through anonymous and named nested structs and unions. */
export interface FieldLayout {
  path: string;
  /** Bytes from the start of the outermost struct (bitfields: the byte holding the first bit). */
  offset: number;
  bitOffset: number;
  /** 0 unless a bitfield. */
  bitSize: number;
  /** Bytes of the member's type (for arrays: the whole array). */
  size: number;
  type: number;
  /** The member's type with typedefs and qualifiers looked through. */
  kind: BtfKind;
  /** The C spelling of the member's type, e.g. "struct list_head", "long unsigned int *", "char [32]". */
  typeName: string;
  /** Arrays: element count and element size. */
  array?: { count: number; elementSize: number };
}

export interface StructLayout {
  name: string;
  kind: 'struct' | 'union';
  size: number;
  /** Every member path; a path two union arms give different offsets to is left out (see ambiguous). */
  members: ReadonlyMap<string, FieldLayout>;
  /** Paths that different union arms place at different offsets: not answered. */
  ambiguous: ReadonlySet<string>;
}

/** BTF does not have what was asked (no such struct, member, enum or enumerator). */
export class BtfLookupError extends XmeError {}

function kindOf(code: number, at: number, source: string): BtfKind {
  const kind = BTF_KINDS[code];
  if (!kind || code === 0) throw new XmeError(`${source}: BTF type record at byte ${at} has unknown kind ${code}`);
  return kind;
}

export class Btf {
  private byNameIndex: Map<string, BtfType[]> | undefined;
  private readonly layouts = new Map<string, StructLayout>();

  private constructor(
    readonly source: string,
    /** Index = type id; [0] is void. */
    readonly types: readonly BtfType[],
  ) {}

  /** Parse a raw BTF blob; a malformed blob is an error naming what is wrong and where. */
  static parse(blob: Buffer, source = 'BTF'): Btf {
    if (blob.length < HEADER_BYTES) throw new XmeError(`${source}: ${blob.length} bytes are too few for a BTF header`);
    const magic = blob.readUInt16LE(0);
    if (magic !== BTF_MAGIC) {
      const swapped = magic === 0x9feb ? ' (big-endian BTF is not read here)' : '';
      throw new XmeError(`${source}: not BTF (magic 0x${magic.toString(16)}, expected 0xeb9f)${swapped}`);
    }
    const version = blob[2]!;
    if (version !== 1) throw new XmeError(`${source}: BTF version ${version}, only version 1 is read here`);
    const headerLength = blob.readUInt32LE(4);
    if (headerLength < HEADER_BYTES || headerLength > blob.length) throw new XmeError(`${source}: BTF header length ${headerLength} is impossible`);
    const [typeOff, typeLen, strOff, strLen] = [8, 12, 16, 20].map((at) => blob.readUInt32LE(at)) as [number, number, number, number];
    const typesStart = headerLength + typeOff;
    const stringsStart = headerLength + strOff;
    if (typesStart + typeLen > blob.length || stringsStart + strLen > blob.length) {
      throw new XmeError(`${source}: BTF sections run past the end of the blob (${blob.length} bytes; truncated?)`);
    }
    const strings = blob.subarray(stringsStart, stringsStart + strLen);
    if (strLen > 0 && strings[0] !== 0) throw new XmeError(`${source}: BTF string section does not begin with the empty string`);
    const name = (offset: number, at: number): string => {
      if (offset === 0) return '';
      if (offset >= strLen) throw new XmeError(`${source}: BTF type record at byte ${at} names string offset ${offset}, past the strings (${strLen} bytes)`);
      const end = strings.indexOf(0, offset);
      if (end < 0) throw new XmeError(`${source}: BTF string at offset ${offset} is not NUL-terminated`);
      return strings.toString('latin1', offset, end);
    };

    const types: BtfType[] = [{ id: 0, kind: 'void', name: '', kindFlag: false, vlen: 0 }];
    const records = blob.subarray(typesStart, typesStart + typeLen);
    let at = 0;
    while (at < records.length) {
      if (at + 12 > records.length) throw new XmeError(`${source}: BTF type section ends inside a type record (byte ${at})`);
      const recordAt = at;
      const nameOff = records.readUInt32LE(at);
      const info = records.readUInt32LE(at + 4);
      const sizeOrType = records.readUInt32LE(at + 8);
      at += 12;
      const vlen = info & 0xffff;
      const kind = kindOf((info >>> 24) & 0x1f, recordAt, source);
      const kindFlag = info >>> 31 === 1;
      const type: BtfType = { id: types.length, kind, name: name(nameOff, recordAt), kindFlag, vlen };
      const need = (bytes: number) => {
        if (at + bytes > records.length) throw new XmeError(`${source}: BTF ${kind} record of type ${type.id} runs past the type section`);
      };
      switch (kind) {
        case 'int': {
          need(4);
          const word = records.readUInt32LE(at);
          at += 4;
          const encoding = (word >>> 24) & 0xf;
          type.size = sizeOrType;
          type.int = {
            bits: word & 0xff,
            bitOffset: (word >>> 16) & 0xff,
            signed: (encoding & 1) !== 0,
            char: (encoding & 2) !== 0,
            bool: (encoding & 4) !== 0,
          };
          break;
        }
        case 'array':
          need(12);
          type.size = 0;
          type.array = { elementType: records.readUInt32LE(at), indexType: records.readUInt32LE(at + 4), count: records.readUInt32LE(at + 8) };
          at += 12;
          break;
        case 'struct':
        case 'union':
          need(vlen * 12);
          type.size = sizeOrType;
          type.members = [];
          for (let i = 0; i < vlen; i++, at += 12) {
            const offset = records.readUInt32LE(at + 8);
            type.members.push({
              name: name(records.readUInt32LE(at), recordAt),
              type: records.readUInt32LE(at + 4),
              bitOffset: kindFlag ? offset & 0xffffff : offset,
              bitSize: kindFlag ? offset >>> 24 : 0,
            });
          }
          break;
        case 'enum':
          need(vlen * 8);
          type.size = sizeOrType;
          type.enumerators = [];
          for (let i = 0; i < vlen; i++, at += 8) {
            const value = kindFlag ? BigInt(records.readInt32LE(at + 4)) : BigInt(records.readUInt32LE(at + 4));
            type.enumerators.push({ name: name(records.readUInt32LE(at), recordAt), value });
          }
          break;
        case 'enum64':
          need(vlen * 12);
          type.size = sizeOrType;
          type.enumerators = [];
          for (let i = 0; i < vlen; i++, at += 12) {
            const unsigned = (BigInt(records.readUInt32LE(at + 8)) << 32n) | BigInt(records.readUInt32LE(at + 4));
            type.enumerators.push({ name: name(records.readUInt32LE(at), recordAt), value: kindFlag ? BigInt.asIntN(64, unsigned) : unsigned });
          }
          break;
        case 'func_proto':
          need(vlen * 8);
          type.type = sizeOrType;
          type.params = [];
          for (let i = 0; i < vlen; i++, at += 8) type.params.push({ name: name(records.readUInt32LE(at), recordAt), type: records.readUInt32LE(at + 4) });
          break;
        case 'var':
          need(4);
          type.type = sizeOrType;
          at += 4;
          break;
        case 'datasec':
          need(vlen * 12);
          type.size = sizeOrType;
          type.variables = [];
          for (let i = 0; i < vlen; i++, at += 12) {
            type.variables.push({ type: records.readUInt32LE(at), offset: records.readUInt32LE(at + 4), size: records.readUInt32LE(at + 8) });
          }
          break;
        case 'decl_tag':
          need(4);
          type.type = sizeOrType;
          type.componentIndex = records.readInt32LE(at);
          at += 4;
          break;
        case 'float':
          type.size = sizeOrType;
          break;
        case 'fwd':
          break;
        default: // ptr, typedef, volatile, const, restrict, func, type_tag
          type.type = sizeOrType;
      }
      types.push(type);
    }
    const btf = new Btf(source, types);
    btf.checkReferences();
    return btf;
  }

  /** Every type id a record refers to must exist. */
  private checkReferences(): void {
    const count = this.types.length;
    const check = (from: BtfType, id: number, what: string) => {
      if (id >= count)
        throw new XmeError(`${this.source}: BTF type ${from.id} (${from.kind} ${from.name}) refers to ${what} type ${id}, but there are ${count - 1} types`);
    };
    for (const type of this.types) {
      if (type.type !== undefined) check(type, type.type, 'its');
      if (type.array) {
        check(type, type.array.elementType, 'an element');
        check(type, type.array.indexType, 'an index');
      }
      for (const member of type.members ?? []) check(type, member.type, `member ${member.name}'s`);
      for (const param of type.params ?? []) check(type, param.type, 'a parameter');
      for (const variable of type.variables ?? []) check(type, variable.type, 'a variable');
    }
  }

  get count(): number {
    return this.types.length - 1;
  }

  type(id: number): BtfType {
    const type = this.types[id];
    if (!type) throw new BtfLookupError(`${this.source}: no BTF type ${id}`);
    return type;
  }

  /** Types with this name, of this kind if given. */
  byName(name: string, kind?: BtfKind): BtfType[] {
    if (!this.byNameIndex) {
      this.byNameIndex = new Map();
      for (const type of this.types) {
        if (!type.name) continue;
        const list = this.byNameIndex.get(type.name);
        if (list) list.push(type);
        else this.byNameIndex.set(type.name, [type]);
      }
    }
    const all = this.byNameIndex.get(name) ?? [];
    return kind ? all.filter((t) => t.kind === kind) : all;
  }

  /** The type with typedefs, qualifiers and type tags looked through. */
  resolve(id: number): BtfType {
    let type = this.type(id);
    for (let hops = 0; ; hops++) {
      if (!['typedef', 'volatile', 'const', 'restrict', 'type_tag'].includes(type.kind)) return type;
      if (hops > 64) throw new XmeError(`${this.source}: BTF type ${id} is a loop of typedefs or qualifiers`);
      type = this.type(type.type!);
    }
  }

  /** Bytes a value of this type takes. */
  sizeOf(id: number): number {
    const type = this.resolve(id);
    switch (type.kind) {
      case 'ptr':
        return POINTER_BYTES;
      case 'array':
        return type.array!.count * this.sizeOf(type.array!.elementType);
      case 'int':
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
      case 'float':
      case 'datasec':
        return type.size!;
      default:
        throw new BtfLookupError(`${this.source}: BTF type ${id} (${type.kind} ${type.name}) has no size`);
    }
  }

  /** The C spelling of a type, for messages and profiles. */
  typeName(id: number, depth = 0): string {
    const type = this.type(id);
    if (depth > 16) return '…';
    switch (type.kind) {
      case 'void':
        return 'void';
      case 'ptr':
        return `${this.typeName(type.type!, depth + 1)} *`;
      case 'array':
        return `${this.typeName(type.array!.elementType, depth + 1)} [${type.array!.count}]`;
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
        return `${type.kind === 'enum64' ? 'enum' : type.kind} ${type.name || '(anon)'}`;
      case 'const':
      case 'volatile':
      case 'restrict':
        return `${type.kind} ${this.typeName(type.type!, depth + 1)}`;
      case 'type_tag':
        return this.typeName(type.type!, depth + 1);
      case 'func_proto':
        return 'function';
      default:
        return type.name || type.kind;
    }
  }

  /** The complete struct (or union) of this name; a forward declaration alone is not enough. */
  struct(name: string): BtfType {
    const found = this.byName(name).filter((t) => t.kind === 'struct' || t.kind === 'union');
    if (found.length === 0) throw new BtfLookupError(`${this.source}: BTF has no struct ${name}`);
    // Kernel BTF (deduplicated) has one definition per name; should two differ, the first is the kernel's own.
    return found[0]!;
  }

  /** A struct's size and every member path, anonymous members flattened, nested named structs as "a.b". */
  structLayout(name: string): StructLayout {
    const cached = this.layouts.get(name);
    if (cached) return cached;
    const root = this.struct(name);
    const members = new Map<string, FieldLayout>();
    const ambiguous = new Set<string>();
    const visit = (type: BtfType, baseBits: number, prefix: string, depth: number) => {
      if (depth > 32) throw new XmeError(`${this.source}: struct ${name} nests more than 32 levels`);
      for (const member of type.members!) {
        const bitOffset = baseBits + member.bitOffset;
        const resolved = this.resolve(member.type);
        const nested = resolved.kind === 'struct' || resolved.kind === 'union';
        if (!member.name) {
          if (nested) visit(resolved, bitOffset, prefix, depth + 1);
          continue;
        }
        const path = prefix + member.name;
        const field: FieldLayout = {
          path,
          offset: Math.floor(bitOffset / 8),
          bitOffset,
          bitSize: member.bitSize,
          size: resolved.kind === 'fwd' || resolved.kind === 'func_proto' ? 0 : this.sizeOf(member.type),
          type: member.type,
          kind: resolved.kind,
          typeName: this.typeName(member.type),
        };
        if (resolved.kind === 'array') field.array = { count: resolved.array!.count, elementSize: this.sizeOf(resolved.array!.elementType) };
        const earlier = members.get(path);
        if (ambiguous.has(path)) {
          // already left out
        } else if (earlier && earlier.bitOffset !== field.bitOffset) {
          members.delete(path);
          ambiguous.add(path);
        } else if (!earlier) {
          members.set(path, field);
        }
        if (nested) visit(resolved, bitOffset, `${path}.`, depth + 1);
      }
    };
    visit(root, 0, '', 0);
    const layout: StructLayout = { name, kind: root.kind as 'struct' | 'union', size: root.size!, members, ambiguous };
    this.layouts.set(name, layout);
    return layout;
  }

  /** One member of a struct by path; a missing or ambiguous one is an error naming it. */
  member(structName: string, path: string): FieldLayout {
    const layout = this.structLayout(structName);
    const field = layout.members.get(path);
    if (field) return field;
    if (layout.ambiguous.has(path)) throw new BtfLookupError(`${this.source}: struct ${structName}.${path} lies at different offsets in different union arms`);
    throw new BtfLookupError(`${this.source}: struct ${structName} has no member ${path}`);
  }

  /** The enumerators of a named enum (ENUM or ENUM64). */
  enumerators(enumName: string): ReadonlyMap<string, bigint> {
    const type = this.byName(enumName).find((t) => t.kind === 'enum' || t.kind === 'enum64');
    if (!type) throw new BtfLookupError(`${this.source}: BTF has no enum ${enumName}`);
    return new Map(type.enumerators!.map((e) => [e.name, e.value]));
  }

  /** The value of an enumerator, looked up in every enum (enumerator names are unique in C). */
  enumValue(enumerator: string, enumName?: string): bigint {
    if (enumName) {
      const value = this.enumerators(enumName).get(enumerator);
      if (value === undefined) throw new BtfLookupError(`${this.source}: enum ${enumName} has no ${enumerator}`);
      return value;
    }
    for (const type of this.types) {
      const found = type.enumerators?.find((e) => e.name === enumerator);
      if (found) return found.value;
    }
    throw new BtfLookupError(`${this.source}: no enum has ${enumerator}`);
  }
}
