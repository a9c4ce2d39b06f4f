/**
 * The BTF reader on a small blob built here by the documented format (Documentation/bpf/btf.rst), and on the
 * real .BTF of the cached cloud image's kernel (skipped, visibly, when the image is not built).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execaSync } from 'execa';
import { describe, expect, it } from 'vitest';
import { cacheDir } from '../util/paths.ts';
import { Btf, BTF_KINDS, type BtfKind } from './btf.ts';
import { elfSection, elfSections } from './elf.ts';
import { decompressLz4Legacy } from './lz4-legacy.ts';
import { btfFromVmlinuz, bzImagePayload } from './vmlinux.ts';
import { kernelInfoFromFiles } from './kernel-info.ts';
import { profileFromVmlinuz } from './layout-profile.ts';
import { rulesDisagreeWithBtf, rulesForKernel } from './series-rules.ts';

/** A BTF writer for tests: types are appended in id order (1, 2, …); names go to the string section. */
class BtfBuilder {
  private strings = Buffer.from([0]);
  private readonly names = new Map<string, number>();
  private readonly records: Buffer[] = [];

  name(text: string): number {
    if (!text) return 0;
    const known = this.names.get(text);
    if (known !== undefined) return known;
    const offset = this.strings.length;
    this.strings = Buffer.concat([this.strings, Buffer.from(`${text}\0`, 'latin1')]);
    this.names.set(text, offset);
    return offset;
  }

  /** Append one record; returns its type id. */
  type(kind: BtfKind, name: string, sizeOrType: number, options: { vlen?: number; kindFlag?: boolean; extra?: number[] } = {}): number {
    const words = [
      this.name(name),
      ((options.kindFlag ? 1 : 0) << 31) | (BTF_KINDS.indexOf(kind) << 24) | (options.vlen ?? 0),
      sizeOrType,
      ...(options.extra ?? []),
    ];
    const record = Buffer.alloc(words.length * 4);
    words.forEach((word, i) => record.writeUInt32LE(word >>> 0, i * 4));
    this.records.push(record);
    return this.records.length;
  }

  int(name: string, bytes: number, signed = false): number {
    return this.type('int', name, bytes, { extra: [((signed ? 1 : 0) << 24) | (bytes * 8)] });
  }

  /** STRUCT or UNION; members as [name, type, bit offset, bitfield size]. */
  compound(kind: 'struct' | 'union', name: string, bytes: number, members: [string, number, number, number?][]): number {
    const kindFlag = members.some((m) => m[3] !== undefined);
    const extra = members.flatMap(([member, type, bitOffset, bitSize]) => [this.name(member), type, kindFlag ? ((bitSize ?? 0) << 24) | bitOffset : bitOffset]);
    return this.type(kind, name, bytes, { vlen: members.length, kindFlag, extra });
  }

  /** Reserve an id now and fill it later (types that refer forward). */
  placeholder(): number {
    this.records.push(Buffer.alloc(0));
    return this.records.length;
  }

  fill(id: number, build: () => number): void {
    const before = this.records.length;
    build();
    this.records[id - 1] = this.records.pop()!;
    if (this.records.length !== before) throw new Error('fill builds exactly one record');
  }

  blob(): Buffer {
    const types = Buffer.concat(this.records);
    const header = Buffer.alloc(24);
    header.writeUInt16LE(0xeb9f, 0);
    header[2] = 1;
    header.writeUInt32LE(24, 4);
    header.writeUInt32LE(0, 8);
    header.writeUInt32LE(types.length, 12);
    header.writeUInt32LE(types.length, 16);
    header.writeUInt32LE(this.strings.length, 20);
    return Buffer.concat([header, types, this.strings]);
  }
}

/** A struct page shaped like 6.1's (anonymous unions, nested structs), plus one record of every other kind. */
function sampleBtf(): Buffer {
  const b = new BtfBuilder();
  const uint = b.int('unsigned int', 4);
  const ulong = b.int('long unsigned int', 8);
  const int = b.int('int', 4, true);
  const listHead = b.placeholder();
  const listPtr = b.type('ptr', '', listHead);
  b.fill(listHead, () =>
    b.compound('struct', 'list_head', 16, [
      ['next', listPtr, 0],
      ['prev', listPtr, 64],
    ]),
  );
  const atomic = b.compound('struct', '', 4, [['counter', int, 0]]);
  const atomicT = b.type('typedef', 'atomic_t', atomic);
  const fwdSpace = b.type('fwd', 'address_space', 0);
  const spacePtr = b.type('ptr', '', fwdSpace);
  const pgoff = b.type('typedef', 'pgoff_t', ulong);
  const firstArm = b.compound('struct', '', 40, [
    ['lru', listHead, 0],
    ['mapping', spacePtr, 128],
    ['index', pgoff, 192],
    ['private', ulong, 256],
  ]);
  const tailArm = b.compound('struct', '', 40, [
    ['compound_head', ulong, 0],
    ['compound_dtor', b.int('unsigned char', 1), 64],
    ['compound_order', b.int('unsigned char', 1), 72],
    ['clash', uint, 96],
  ]);
  const otherArm = b.compound('struct', '', 40, [['clash', uint, 128]]);
  const bigUnion = b.compound('union', '', 40, [
    ['', firstArm, 0],
    ['', tailArm, 0],
    ['', otherArm, 0],
  ]);
  const countUnion = b.compound('union', '', 4, [
    ['_mapcount', atomicT, 0],
    ['page_type', uint, 0],
  ]);
  const page = b.compound('struct', 'page', 64, [
    ['flags', ulong, 0],
    ['', bigUnion, 64],
    ['', countUnion, 384],
    ['_refcount', atomicT, 416],
    ['memcg_data', b.type('const', '', ulong), 448],
  ]);
  b.compound('struct', 'bits', 8, [
    ['low', uint, 0, 3],
    ['high', uint, 3, 29],
    ['next', uint, 32, 0],
  ]);
  const char = b.int('char', 1, true);
  const array = b.type('array', '', 0, { extra: [char, uint, 32] });
  b.compound('struct', 'super_block', 40, [
    ['s_dev', uint, 0],
    ['s_id', array, 64],
  ]);
  b.type('enum', 'pageflags', 4, { vlen: 3, extra: [b.name('PG_locked'), 0, b.name('PG_head'), 16, b.name('__NR_PAGEFLAGS'), 24] });
  b.type('enum', 'signed_enum', 4, { vlen: 1, kindFlag: true, extra: [b.name('MINUS_ONE'), 0xffffffff] });
  b.type('enum64', 'big', 8, { vlen: 1, extra: [b.name('BIG'), 0x00000400, 0xdead0000] });
  const proto = b.type('func_proto', '', int, { vlen: 1, extra: [b.name('page'), b.type('ptr', '', page)] });
  b.type('func', 'page_to_nid', proto, { vlen: 1 });
  const variable = b.type('var', 'vmemmap_base', ulong, { extra: [1] });
  b.type('datasec', '.data', 8, { vlen: 1, extra: [variable, 0, 8] });
  b.type('float', 'double', 8);
  b.type('decl_tag', 'user', variable, { extra: [0xffffffff] });
  b.type('type_tag', 'rcu', page);
  b.type('volatile', '', b.type('restrict', '', listPtr));
  return b.blob();
}

describe('BTF reader on a blob built by the documented format', () => {
  const btf = Btf.parse(sampleBtf(), 'sample');

  it('reads every kind', () => {
    const kinds = new Set(btf.types.map((t) => t.kind));
    for (const kind of BTF_KINDS) expect(kinds.has(kind), kind).toBe(true);
    expect(btf.byName('page_to_nid', 'func')[0]!.vlen).toBe(1);
    expect(btf.byName('.data', 'datasec')[0]!.variables).toEqual([{ type: btf.byName('vmemmap_base', 'var')[0]!.id, offset: 0, size: 8 }]);
    expect(btf.byName('user', 'decl_tag')[0]!.componentIndex).toBe(-1);
  });

  it('lays out struct page: members inside anonymous unions and structs, nested named structs by path', () => {
    const page = btf.structLayout('page');
    expect(page.size).toBe(64);
    const offsets = Object.fromEntries([...page.members.values()].map((m) => [m.path, m.offset]));
    expect(offsets).toMatchObject({
      flags: 0,
      lru: 8,
      'lru.next': 8,
      'lru.prev': 16,
      mapping: 24,
      index: 32,
      private: 40,
      compound_head: 8,
      compound_dtor: 16,
      compound_order: 17,
      _mapcount: 48,
      '_mapcount.counter': 48,
      page_type: 48,
      _refcount: 52,
      memcg_data: 56,
    });
    expect(btf.member('page', 'index')).toMatchObject({ size: 8, kind: 'int', typeName: 'pgoff_t' });
    expect(btf.member('page', 'mapping')).toMatchObject({ size: 8, kind: 'ptr', typeName: 'address_space *' });
    expect(btf.member('page', 'memcg_data').typeName).toBe('const long unsigned int');
  });

  it('refuses a path that two union arms place at different offsets, and a missing one', () => {
    expect(btf.structLayout('page').ambiguous.has('clash')).toBe(true);
    expect(() => btf.member('page', 'clash')).toThrow(/different offsets in different union arms/);
    expect(() => btf.member('page', 'nothing')).toThrow(/struct page has no member nothing/);
    expect(() => btf.structLayout('inode')).toThrow(/no struct inode/);
  });

  it('reads bitfields (kind_flag) and arrays', () => {
    expect(btf.member('bits', 'low')).toMatchObject({ bitOffset: 0, bitSize: 3, offset: 0 });
    expect(btf.member('bits', 'high')).toMatchObject({ bitOffset: 3, bitSize: 29, offset: 0 });
    expect(btf.member('bits', 'next')).toMatchObject({ bitOffset: 32, bitSize: 0, offset: 4 });
    expect(btf.member('super_block', 's_id')).toMatchObject({
      offset: 8,
      size: 32,
      kind: 'array',
      array: { count: 32, elementSize: 1 },
      typeName: 'char [32]',
    });
  });

  it('reads enum values, signed, unsigned and 64-bit', () => {
    expect(Object.fromEntries(btf.enumerators('pageflags'))).toEqual({ PG_locked: 0n, PG_head: 16n, __NR_PAGEFLAGS: 24n });
    expect(btf.enumValue('MINUS_ONE')).toBe(-1n);
    expect(btf.enumValue('BIG', 'big')).toBe(0xdead000000000400n);
    expect(() => btf.enumValue('PG_lru', 'pageflags')).toThrow(/has no PG_lru/);
  });

  it('resolves typedefs and qualifiers and sizes types', () => {
    const atomic = btf.byName('atomic_t', 'typedef')[0]!;
    expect(btf.resolve(atomic.id).kind).toBe('struct');
    expect(btf.sizeOf(atomic.id)).toBe(4);
    const pointer = btf.types.find((t) => t.kind === 'volatile')!;
    expect(btf.sizeOf(pointer.id)).toBe(8);
  });

  it('refuses malformed blobs with the reason', () => {
    const blob = sampleBtf();
    const badMagic = Buffer.from(blob);
    badMagic.writeUInt16LE(0x1234, 0);
    expect(() => Btf.parse(badMagic, 'x')).toThrow(/x: not BTF \(magic 0x1234/);
    expect(() => Btf.parse(blob.subarray(0, blob.length - 10), 'x')).toThrow(/run past the end of the blob/);
    const badKind = Buffer.from(blob);
    badKind.writeUInt32LE((25 << 24) >>> 0, 24 + 4); // the first record's info word
    expect(() => Btf.parse(badKind, 'x')).toThrow(/unknown kind 25/);
    const badReference = Buffer.from(blob);
    // The first ptr record (type 5: list_head *) points at type 4; make it point past the last type.
    const at = 24 + 16 * 3 + 12 + 24 + 8; // three ints (16 B each), list_head (12 + 2 × 12), then the ptr's size-or-type word
    expect(badReference.readUInt32LE(at)).toBe(4);
    badReference.writeUInt32LE(100000, at);
    expect(() => Btf.parse(badReference, 'x')).toThrow(/refers to its type 100000/);
  });
});

describe('LZ4 legacy frames', () => {
  it('decodes literals, overlapping matches and long lengths', () => {
    const literals = Buffer.from('0123456789abcdefghij'); // 20 literals: length 15 + 5
    const block = Buffer.concat([
      Buffer.from([0x35]),
      Buffer.from('abc'),
      Buffer.from([3, 0]), // match: 9 bytes from 3 back (overlapping)
      Buffer.from([0xf0, 5]),
      literals,
    ]);
    const frame = Buffer.alloc(8);
    frame.writeUInt32LE(0x184c2102, 0);
    frame.writeUInt32LE(block.length, 4);
    const size = Buffer.alloc(4);
    size.writeUInt32LE(32);
    const output = decompressLz4Legacy(Buffer.concat([frame, block, size]), 32);
    expect(output.toString('latin1')).toBe(`abcabcabcabc${literals.toString('latin1')}`);
    expect(() => decompressLz4Legacy(Buffer.concat([frame, block]), 40)).toThrow(/decompressed to 32 bytes/);
    expect(() => decompressLz4Legacy(Buffer.from('nope'), 1)).toThrow(/not an LZ4 legacy frame/);
  });

  const lz4 = execaSync('sh', ['-c', 'command -v lz4'], { reject: false }).exitCode === 0;
  it.skipIf(!lz4)('decodes what the lz4 tool writes with -l (as the kernel build does)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-lz4-'));
    try {
      const data = Buffer.alloc(9 << 20); // more than one 8 MiB block
      for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((((i / 4) * 2654435761) % 1000) >>> 0, i);
      fs.writeFileSync(path.join(dir, 'in'), data);
      execaSync('lz4', ['-l', '-q', '-f', path.join(dir, 'in'), path.join(dir, 'in.lz4')]);
      expect(decompressLz4Legacy(fs.readFileSync(path.join(dir, 'in.lz4')), data.length).equals(data)).toBe(true);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ELF section table', () => {
  it('cuts out a section by name', () => {
    const names = Buffer.from('\0.BTF\0.shstrtab\0');
    const body = Buffer.from('btf bytes');
    const header = Buffer.alloc(64);
    header.writeUInt32BE(0x7f454c46, 0);
    header[4] = 2;
    header[5] = 1;
    const sectionsAt = 64 + body.length + names.length;
    header.writeBigUInt64LE(BigInt(sectionsAt), 0x28);
    header.writeUInt16LE(64, 0x3a);
    header.writeUInt16LE(3, 0x3c);
    header.writeUInt16LE(2, 0x3e);
    const section = (name: number, type: number, offset: number, size: number) => {
      const entry = Buffer.alloc(64);
      entry.writeUInt32LE(name, 0);
      entry.writeUInt32LE(type, 4);
      entry.writeBigUInt64LE(BigInt(offset), 0x18);
      entry.writeBigUInt64LE(BigInt(size), 0x20);
      return entry;
    };
    const file = Buffer.concat([header, body, names, section(0, 0, 0, 0), section(1, 1, 64, body.length), section(6, 3, 64 + body.length, names.length)]);
    expect(elfSections(file).map((s) => s.name)).toEqual(['', '.BTF', '.shstrtab']);
    expect(elfSection(file, '.BTF')?.toString()).toBe('btf bytes');
    expect(elfSection(file, '.data')).toBeUndefined();
    expect(() => elfSections(file.subarray(0, sectionsAt + 10))).toThrow(/outside the file/);
  });
});

const imageDir = path.join(cacheDir(), 'images', 'cloud');
const vmlinuz = path.join(imageDir, 'vmlinuz');
const haveImage = fs.existsSync(vmlinuz) && fs.existsSync(path.join(imageDir, 'System.map'));

describe('the real BTF of the cached cloud image (Debian 6.1)', () => {
  it.skipIf(!haveImage)('is in the LZ4-compressed vmlinux, and gives struct page as measured', () => {
    expect(bzImagePayload(fs.readFileSync(vmlinuz)).compression).toBe('lz4');
    const blob = btfFromVmlinuz(vmlinuz)!;
    const btf = Btf.parse(blob, 'cloud .BTF');
    expect(btf.count).toBeGreaterThan(50_000);
    const page = btf.structLayout('page');
    expect(page.size).toBe(64);
    const at = (path: string) => btf.member('page', path).offset;
    expect([at('flags'), at('lru'), at('compound_head'), at('mapping'), at('index'), at('private'), at('_mapcount'), at('page_type'), at('_refcount')]).toEqual(
      [0, 8, 8, 24, 32, 40, 48, 48, 52],
    );
    expect([at('compound_dtor'), at('compound_order')]).toEqual([16, 17]);
    expect(btf.member('address_space', 'host').offset).toBe(0);
    expect(['i_mode', 'i_sb', 'i_ino', 'i_size'].map((m) => btf.member('inode', m).offset)).toEqual([0, 40, 64, 80]);
    expect(btf.member('super_block', 's_id').offset).toBe(968);
    expect(btf.member('slab', 'slab_cache').offset).toBe(24);
    expect(btf.member('kmem_cache', 'name').offset).toBe(96);
    expect(btf.structLayout('zone').size).toBe(1536);
    expect(btf.member('zone', 'free_area')).toMatchObject({ offset: 256, array: { count: 11, elementSize: 88 } });
    expect(btf.member('zone', 'vm_stat').offset).toBe(1344);
    expect(btf.enumValue('PG_head', 'pageflags')).toBe(16n);
    expect(btf.enumValue('NR_FILE_PAGES', 'node_stat_item')).toBe(19n);
  });

  it.skipIf(!haveImage)('makes a layout profile (cached by the vmlinuz sha256) that the 6.1 rules agree with', () => {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-profile-'));
    try {
      const kernel = kernelInfoFromFiles(path.join(imageDir, 'System.map'), vmlinuz);
      const profile = profileFromVmlinuz(vmlinuz, kernel.version, cache)!;
      expect(profile.data.btf).toMatchObject({ from: 'vmlinuz', bytes: 4_120_215 });
      expect(fs.readdirSync(path.join(cache, 'btf'))).toEqual([`vmlinuz-${profile.data.btf.vmlinuzSha256}.json`]);
      expect(profileFromVmlinuz(vmlinuz, kernel.version, cache)!.data).toEqual(profile.data); // from the cache
      expect(rulesDisagreeWithBtf(rulesForKernel('g0', kernel.version), profile)).toEqual([]);
      expect(() => rulesForKernel('g0', { ...kernel.version, release: '6.6.0-1-amd64' })).toThrow(
        /guest g0: page classes refused: kernel 6.6.0-1-amd64 is of series 6.6, which has no page-class rules \(known: 6.1\)/,
      );
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });
});
