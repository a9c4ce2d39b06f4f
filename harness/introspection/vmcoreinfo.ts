/**
 * The guest kernel's own VMCOREINFO: the "KEY=value" lines it writes at boot for crash-dump tools
 * (kernel/crash_core.c, arch/x86/kernel/machine_kexec_64.c) into a page that `vmcoreinfo_data` points to,
 * `vmcoreinfo_size` bytes long. It states struct page's size and offsets, some PG_* bits, the buddy
 * marker, the KASLR offset and whether 5-level paging is on — in the running kernel's own words, so a layout
 * profile (from BTF) and the series rules (from headers) are checked against it before a struct page is read.
 */
import type { KernelPlacement } from './kernel-placement.ts';
import type { KernelMemory } from './kernel-memory.ts';
import { PageClassRefusal } from './kernel-memory.ts';
import type { LayoutProfile } from './layout-profile.ts';
import type { SeriesRules } from './series-rules.ts';

/** VMCOREINFO_BYTES: one page. */
const MAX_BYTES = 4096;

export function parseVmcoreinfo(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of text.split('\n')) {
    const equals = line.indexOf('=');
    if (equals > 0) entries.set(line.slice(0, equals), line.slice(equals + 1));
  }
  return entries;
}

/** Read the VMCOREINFO text out of guest memory. */
export function readVmcoreinfo(memory: KernelMemory): string {
  const pointer = memory.symbolBytes('vmcoreinfo_data', 8).readBigUInt64LE(0);
  const size = Number(memory.symbolBytes('vmcoreinfo_size', 8).readBigUInt64LE(0));
  if (pointer === 0n)
    throw new PageClassRefusal(
      memory.guest.id,
      'VMCOREINFO',
      'vmcoreinfo_data is NULL (a kernel without CONFIG_CRASH_CORE, or read before its subsys_initcall)',
    );
  if (size <= 0 || size > MAX_BYTES)
    throw new PageClassRefusal(memory.guest.id, 'VMCOREINFO', `vmcoreinfo_size reads ${size}, not a VMCOREINFO text of at most ${MAX_BYTES} bytes`);
  return memory.read(pointer, size, 'vmcoreinfo_data').toString('latin1');
}

export interface VmcoreinfoExpectations {
  profile: LayoutProfile;
  rules: SeriesRules;
  release: string;
  placement: KernelPlacement;
  /** Relocated address of init_top_pgt (System.map + KASLR offset). */
  initTopPgt: bigint;
}

/** What the text must say: key → expected value, and whether the key must be there. */
export function vmcoreinfoExpectations(expect: VmcoreinfoExpectations): { key: string; value: string; required: boolean }[] {
  const { profile, rules } = expect;
  const list: { key: string; value: string; required: boolean }[] = [];
  const add = (key: string, value: number | bigint | string, required = true) => list.push({ key, value: String(value), required });
  add('OSRELEASE', expect.release);
  add('PAGESIZE', 4096);
  add('KERNELOFFSET', expect.placement.virtualOffset.toString(16));
  add('NUMBER(pgtable_l5_enabled)', 0);
  add('SYMBOL(init_top_pgt)', expect.initTopPgt.toString(16).padStart(16, '0'), false);
  add('SIZE(page)', profile.size('page'));
  for (const member of ['flags', '_refcount', 'mapping', 'lru', '_mapcount', 'private', 'compound_dtor', 'compound_order', 'compound_head'] as const) {
    add(`OFFSET(page.${member})`, profile.offset('page', member));
  }
  add('SIZE(zone)', profile.size('zone'));
  add('SIZE(free_area)', profile.size('free_area'));
  add('SIZE(pglist_data)', profile.size('pglist_data'));
  add('SIZE(list_head)', profile.size('list_head'));
  for (const member of ['free_area', 'vm_stat', 'spanned_pages'] as const) add(`OFFSET(zone.${member})`, profile.offset('zone', member));
  add('OFFSET(free_area.free_list)', profile.offset('free_area', 'free_list'));
  for (const member of ['node_zones', 'nr_zones', 'node_start_pfn', 'node_spanned_pages', 'node_id'] as const) {
    add(`OFFSET(pglist_data.${member})`, profile.offset('pglist_data', member));
  }
  add('OFFSET(list_head.next)', profile.offset('list_head', 'next'));
  add('OFFSET(list_head.prev)', profile.offset('list_head', 'prev'));
  add('LENGTH(zone.free_area)', rules.maxOrder);
  add('LENGTH(free_area.free_list)', profile.field('free_area', 'free_list').count ?? 0);
  add('NUMBER(NR_FREE_PAGES)', profile.enumValue('zone_stat_item', 'NR_FREE_PAGES'));
  for (const flag of ['PG_lru', 'PG_private', 'PG_swapcache', 'PG_swapbacked', 'PG_slab'] as const) add(`NUMBER(${flag})`, rules.pageFlags[flag]);
  add('NUMBER(PG_head_mask)', 1 << rules.pageFlags.PG_head);
  // (~PG_buddy) printed as a signed long: the mapcount value a buddy page holds.
  add('NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)', ~rules.pageType.buddy);
  add('NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)', ~rules.pageType.offline, false);
  add('NUMBER(HUGETLB_PAGE_DTOR)', rules.compoundDtor.HUGETLB_PAGE_DTOR, false);
  return list;
}

/** Where the guest's VMCOREINFO disagrees with what is expected, one line each. */
export function vmcoreinfoDisagreements(entries: Map<string, string>, expect: VmcoreinfoExpectations): string[] {
  const problems: string[] = [];
  for (const { key, value, required } of vmcoreinfoExpectations(expect)) {
    const actual = entries.get(key);
    if (actual === undefined) {
      if (required) problems.push(`it has no ${key}`);
    } else if (actual.toLowerCase() !== value.toLowerCase()) {
      problems.push(`${key}=${actual}, the layout profile and ${expect.rules.series} rules say ${value}`);
    }
  }
  return problems;
}

/** Read the guest's VMCOREINFO and refuse, naming the guest and every disagreement, unless it agrees. */
export function checkVmcoreinfo(memory: KernelMemory, expect: Omit<VmcoreinfoExpectations, 'placement' | 'initTopPgt'>): Map<string, string> {
  const entries = parseVmcoreinfo(readVmcoreinfo(memory));
  const problems = vmcoreinfoDisagreements(entries, { ...expect, placement: memory.placement, initTopPgt: memory.symbolVirtual('init_top_pgt') });
  if (problems.length > 0) {
    throw new PageClassRefusal(
      memory.guest.id,
      'VMCOREINFO',
      `the guest kernel's own VMCOREINFO disagrees: ${problems.join('; ')}`,
      'the layout profile (BTF) or the series rules do not fit this kernel build',
    );
  }
  return entries;
}
