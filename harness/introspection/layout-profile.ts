/**
 * A kernel build's layout profile: the struct sizes, member offsets and enum values that reading its memory
 * needs, taken from the build's own BTF, kept as a small JSON file per build in the cache folder
 * (<cache>/btf/<key>.json) so that the 4 MB BTF is decompressed and parsed once per kernel build, not per run.
 *
 * Where the BTF comes from: the image's vmlinuz (decompressed, its .BTF section; key: the vmlinuz's sha256),
 * or, where the image gives none (a replay without the kernel file, a kernel compressed in a way not read
 * here), the running kernel's rodata between __start_BTF and __stop_BTF (key: the blob's sha256). Either way
 * the profile records the BTF's sha256, so a guest can be checked to run the very BTF the profile came from.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Guest } from '../backends/types.ts';
import { readPhysical } from '../backends/guest-memory.ts';
import { cacheDir } from '../util/paths.ts';
import { errorMessage, XmeError } from '../util/errors.ts';
import { sha256, sha256FileSync } from '../util/hash.ts';
import { Btf, BtfLookupError } from './btf.ts';
import type { KernelVersion } from './bzimage.ts';
import type { KernelInfo } from './kernel-info.ts';
import type { KernelPlacement } from './kernel-placement.ts';
import { kernelImagePhysical } from './kernel-locator.ts';
import { btfFromVmlinuz } from './vmlinux.ts';

export const PROFILE_SCHEMA = 1;

/** The members a profile records, by struct (paths as Btf.member takes them). */
export const PROFILE_MEMBERS = {
  page: [
    'flags',
    'lru',
    'buddy_list',
    'pcp_list',
    'compound_head',
    'compound_dtor',
    'compound_order',
    'mapping',
    'index',
    'private',
    '_mapcount',
    'page_type',
    '_refcount',
  ],
  slab: ['slab_cache'],
  kmem_cache: ['name'],
  address_space: ['host', 'nrpages'],
  inode: ['i_mode', 'i_sb', 'i_mapping', 'i_ino', 'i_size', 'i_generation', 'i_mtime', 'i_ctime'],
  timespec64: ['tv_sec', 'tv_nsec'],
  super_block: ['s_dev', 's_type', 's_id'],
  file_system_type: ['name'],
  zone: ['zone_pgdat', 'per_cpu_pageset', 'per_cpu_zonestats', 'zone_start_pfn', 'spanned_pages', 'present_pages', 'name', 'free_area', 'vm_stat'],
  free_area: ['free_list', 'nr_free'],
  pglist_data: ['node_zones', 'nr_zones', 'node_start_pfn', 'node_spanned_pages', 'node_id', 'per_cpu_nodestats', 'vm_stat'],
  per_cpu_pages: ['count', 'lists'],
  per_cpu_zonestat: ['vm_stat_diff'],
  per_cpu_nodestat: ['vm_node_stat_diff'],
  list_head: ['next', 'prev'],
  module: ['state', 'list', 'name', 'core_layout.base', 'core_layout.size', 'core_layout.text_size', 'core_layout.ro_size'],
} as const satisfies Record<string, readonly string[]>;

export type ProfileStruct = keyof typeof PROFILE_MEMBERS;
export type ProfileMember<S extends ProfileStruct> = (typeof PROFILE_MEMBERS)[S][number];

/** The enums a profile records in full. */
export const PROFILE_ENUMS = ['pageflags', 'zone_stat_item', 'node_stat_item', 'zone_type', 'compound_dtor_id', 'migratetype', 'module_state'] as const;
export type ProfileEnum = (typeof PROFILE_ENUMS)[number];

export interface ProfileField {
  offset: number;
  size: number;
  /** Arrays: element count and element size. */
  count?: number;
  elementSize?: number;
}

export interface LayoutProfileData {
  schema: typeof PROFILE_SCHEMA;
  kernel: { release: string; buildTag: string };
  btf: {
    from: 'vmlinuz' | 'guest memory';
    sha256: string;
    bytes: number;
    types: number;
    /** When it came from an image's vmlinuz: that file's sha256 (the cache key). */
    vmlinuzSha256?: string;
  };
  structs: Record<ProfileStruct, { size: number; members: Record<string, ProfileField> }>;
  enums: Record<ProfileEnum, Record<string, number>>;
}

/** A profile with typed look-ups; a missing entry is a bug in PROFILE_MEMBERS, reported by name. */
export class LayoutProfile {
  constructor(readonly data: LayoutProfileData) {}

  size(struct: ProfileStruct): number {
    return this.data.structs[struct].size;
  }

  field<S extends ProfileStruct>(struct: S, member: ProfileMember<S>): ProfileField {
    const field = this.data.structs[struct].members[member];
    if (!field)
      throw new XmeError(`layout profile of ${this.data.kernel.release} has no ${struct}.${member}`, 'remove the cached profile (<cache>/btf/) to rebuild it');
    return field;
  }

  offset<S extends ProfileStruct>(struct: S, member: ProfileMember<S>): number {
    return this.field(struct, member).offset;
  }

  enumValue(enumName: ProfileEnum, enumerator: string): number {
    const value = this.data.enums[enumName][enumerator];
    if (value === undefined) throw new XmeError(`the BTF of ${this.data.kernel.release} has no ${enumerator} in enum ${enumName}`);
    return value;
  }

  enumerators(enumName: ProfileEnum): Readonly<Record<string, number>> {
    return this.data.enums[enumName];
  }

  /** Build a profile from parsed BTF: every member of PROFILE_MEMBERS must be there. */
  static fromBtf(btf: Btf, version: KernelVersion, origin: LayoutProfileData['btf']): LayoutProfile {
    const structs = {} as LayoutProfileData['structs'];
    for (const [struct, members] of Object.entries(PROFILE_MEMBERS) as [ProfileStruct, readonly string[]][]) {
      const layout = btf.structLayout(struct);
      const fields: Record<string, ProfileField> = {};
      for (const member of members) {
        const field = btf.member(struct, member);
        if (field.bitSize !== 0 || field.bitOffset % 8 !== 0)
          throw new BtfLookupError(`${btf.source}: ${struct}.${member} is a bitfield; the profile takes whole members only`);
        fields[member] = { offset: field.offset, size: field.size, ...(field.array ? { count: field.array.count, elementSize: field.array.elementSize } : {}) };
      }
      structs[struct] = { size: layout.size, members: fields };
    }
    const enums = {} as LayoutProfileData['enums'];
    for (const name of PROFILE_ENUMS) enums[name] = Object.fromEntries([...btf.enumerators(name)].map(([k, v]) => [k, Number(v)]));
    return new LayoutProfile({ schema: PROFILE_SCHEMA, kernel: { release: version.release, buildTag: version.buildTag }, btf: origin, structs, enums });
  }
}

function profileFile(key: string, cache: string): string {
  return path.join(cache, 'btf', `${key}.json`);
}

function readCachedProfile(file: string, version: KernelVersion): LayoutProfile | undefined {
  let data: LayoutProfileData;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8')) as LayoutProfileData;
  } catch {
    return undefined; // absent or damaged: rebuilt
  }
  if (data?.schema !== PROFILE_SCHEMA || data.kernel?.release !== version.release || data.kernel?.buildTag !== version.buildTag) return undefined;
  for (const [struct, members] of Object.entries(PROFILE_MEMBERS)) {
    const recorded = (data.structs as Record<string, { members?: Record<string, unknown> }>)?.[struct]?.members;
    if (!recorded || members.some((m) => !recorded[m])) return undefined; // an older list of members
  }
  if (PROFILE_ENUMS.some((e) => !data.enums?.[e])) return undefined;
  return new LayoutProfile(data);
}

function writeCachedProfile(file: string, profile: LayoutProfile): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, `${JSON.stringify(profile.data, null, 1)}\n`);
  fs.renameSync(temporary, file);
}

/**
 * The profile of the kernel in a vmlinuz file (cached by the file's sha256); undefined when the file has no
 * BTF. `version` is the build the file holds (kernelInfo's), recorded in the profile.
 */
export function profileFromVmlinuz(vmlinuz: string, version: KernelVersion, cache = cacheDir()): LayoutProfile | undefined {
  const vmlinuzSha256 = sha256FileSync(vmlinuz);
  const file = profileFile(`vmlinuz-${vmlinuzSha256}`, cache);
  const cached = readCachedProfile(file, version);
  if (cached) return cached;
  const blob = btfFromVmlinuz(vmlinuz);
  if (!blob) return undefined;
  const btf = Btf.parse(blob, `${vmlinuz} (.BTF)`);
  const profile = LayoutProfile.fromBtf(btf, version, { from: 'vmlinuz', sha256: sha256(blob), bytes: blob.length, types: btf.count, vmlinuzSha256 });
  writeCachedProfile(file, profile);
  return profile;
}

/** The running kernel's BTF, [__start_BTF, __stop_BTF) of its image, read from guest memory. */
export function readGuestBtf(guest: Guest, kernel: KernelInfo, placement: KernelPlacement): Buffer {
  const { systemMap, layout } = kernel;
  const start = systemMap.address('__start_BTF');
  const stop = systemMap.address('__stop_BTF');
  if (stop <= start || stop - start > 64n << 20n)
    throw new XmeError(`${systemMap.source}: [__start_BTF, __stop_BTF) is not a BTF blob (${stop - start} bytes)`);
  return readPhysical(guest, kernelImagePhysical(layout, placement, start), Number(stop - start));
}

/** The profile of a guest's running kernel from the BTF in its memory (cached by the blob's sha256). */
export function profileFromGuestMemory(guest: Guest, kernel: KernelInfo, placement: KernelPlacement, cache = cacheDir()): LayoutProfile {
  const blob = readGuestBtf(guest, kernel, placement);
  const blobSha256 = sha256(blob);
  const file = profileFile(`btf-${blobSha256}`, cache);
  const cached = readCachedProfile(file, kernel.version);
  if (cached) return cached;
  let btf: Btf;
  try {
    btf = Btf.parse(blob, `guest ${guest.id}'s BTF`);
  } catch (error) {
    throw new XmeError(`guest ${guest.id}: the BTF in its kernel's memory cannot be read: ${errorMessage(error)}`);
  }
  const profile = LayoutProfile.fromBtf(btf, kernel.version, { from: 'guest memory', sha256: blobSha256, bytes: blob.length, types: btf.count });
  writeCachedProfile(file, profile);
  return profile;
}

/**
 * The layout profile for a guest's kernel: from the vmlinuz file when given and readable with BTF in it, else
 * from the guest's memory.
 */
export function layoutProfile(guest: Guest, kernel: KernelInfo, placement: KernelPlacement, vmlinuz?: string, cache = cacheDir()): LayoutProfile {
  let imageReason = 'no vmlinuz file given';
  if (vmlinuz && fs.existsSync(vmlinuz)) {
    try {
      const fromFile = profileFromVmlinuz(vmlinuz, kernel.version, cache);
      if (fromFile) return fromFile;
      imageReason = `${vmlinuz} has no .BTF section`;
    } catch (error) {
      imageReason = errorMessage(error);
    }
  } else if (vmlinuz) {
    imageReason = `${vmlinuz} does not exist`;
  }
  try {
    return profileFromGuestMemory(guest, kernel, placement, cache);
  } catch (error) {
    throw new XmeError(`guest ${guest.id}: no layout profile for its kernel: from the image: ${imageReason}; from guest memory: ${errorMessage(error)}`);
  }
}
