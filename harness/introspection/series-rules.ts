/**
 * What reading struct page needs beyond BTF, as data per kernel series: BTF has the types and enums but no
 * macros, so the page_type encoding, the mapping pointer's low bits, the tail-page marks and where zone and
 * node sit in page->flags come from the series' headers (include/linux/page-flags.h, page-flags-layout.h,
 * mm_types.h, poison.h, mmzone.h, as Debian's linux-headers-6.1 ship them). The PG_* bits are an enum (BTF has
 * it) and are listed anyway so that a build whose enum disagrees is refused, not silently followed.
 * Each rule is checked at run time where the guest can tell: against the BTF (enum pageflags, zone_type,
 * compound_dtor_id, free_area's length) and against the guest's own VMCOREINFO (vmcoreinfo.ts).
 */
import { XmeError } from '../util/errors.ts';
import type { KernelVersion } from './bzimage.ts';
import type { LayoutProfile } from './layout-profile.ts';

export interface SeriesRules {
  series: string;
  /** Bit numbers of page->flags (enum pageflags). */
  pageFlags: {
    PG_locked: number;
    PG_referenced: number;
    PG_uptodate: number;
    PG_dirty: number;
    PG_lru: number;
    PG_active: number;
    PG_slab: number;
    /** PG_owner_priv_1: PG_swapcache on swap-backed pages. */
    PG_swapcache: number;
    PG_reserved: number;
    PG_private: number;
    PG_writeback: number;
    PG_head: number;
    PG_swapbacked: number;
    PG_unevictable: number;
    PG_mlocked: number;
  };
  /**
   * page_type (a union with _mapcount): a type is set when `(page_type & (base | bit)) === base`, i.e. the base
   * nibble is there and the type's bit is clear (PAGE_TYPE_BASE and the PG_buddy… values of page-flags.h).
   */
  pageType: { base: number; buddy: number; offline: number; table: number; guard: number };
  /** Low bits of page->mapping (PAGE_MAPPING_ANON, _MOVABLE, _KSM). */
  mapping: { mask: number; anon: number; movable: number; ksm: number };
  /** Bit 0 of compound_head marks a tail page; the rest is the head's struct page address. */
  tailBit: number;
  /** What a tail page's mapping holds (TAIL_MAPPING = POISON_POINTER_DELTA + 0x400). */
  tailMapping: bigint;
  /** Where zone and node numbers sit in page->flags (SPARSEMEM_VMEMMAP: no section bits). */
  flagsLayout: { zoneShift: number; zoneBits: number; nodeShift: number; nodeBits: number };
  /** MAX_ORDER: free_area has this many orders; a buddy's order is below it. */
  maxOrder: number;
  /** Per-CPU free lists: orders 0..costlyOrder have MIGRATE_PCPTYPES lists each, the lists after them hold thpOrder pages. */
  pcp: { costlyOrder: number; thpOrder: number };
  /** enum compound_dtor_id values used to name compound pages. */
  compoundDtor: { COMPOUND_PAGE_DTOR: number; HUGETLB_PAGE_DTOR: number; TRANSHUGE_PAGE_DTOR: number };
}

/** Debian 12's kernel series (6.1.y), x86-64, NODES_SHIFT 10, five zones (DMA, DMA32, Normal, Movable, Device). */
const SERIES_6_1: SeriesRules = {
  series: '6.1',
  pageFlags: {
    PG_locked: 0,
    PG_referenced: 1,
    PG_uptodate: 2,
    PG_dirty: 3,
    PG_lru: 4,
    PG_active: 5,
    PG_slab: 9,
    PG_swapcache: 10,
    PG_reserved: 12,
    PG_private: 13,
    PG_writeback: 15,
    PG_head: 16,
    PG_swapbacked: 19,
    PG_unevictable: 20,
    PG_mlocked: 21,
  },
  pageType: { base: 0xf0000000, buddy: 0x80, offline: 0x100, table: 0x200, guard: 0x400 },
  mapping: { mask: 3, anon: 1, movable: 2, ksm: 3 },
  tailBit: 1,
  tailMapping: 0xdead000000000400n,
  flagsLayout: { zoneShift: 51, zoneBits: 3, nodeShift: 54, nodeBits: 10 },
  maxOrder: 11,
  pcp: { costlyOrder: 3, thpOrder: 9 },
  compoundDtor: { COMPOUND_PAGE_DTOR: 1, HUGETLB_PAGE_DTOR: 2, TRANSHUGE_PAGE_DTOR: 3 },
};

export const SERIES_RULES: Readonly<Record<string, SeriesRules>> = { '6.1': SERIES_6_1 };

/** The series of a kernel release ("6.1.0-57-cloud-amd64" → "6.1"). */
export function kernelSeries(release: string): string {
  const match = /^(\d+)\.(\d+)[.-]/.exec(`${release}.`);
  if (!match) throw new XmeError(`kernel release ${JSON.stringify(release)} has no major.minor version`);
  return `${match[1]}.${match[2]}`;
}

/** The rules for a kernel build's series, or a refusal naming the guest, the series and those known. */
export function rulesForKernel(guestId: string, version: KernelVersion): SeriesRules {
  const series = kernelSeries(version.release);
  const rules = SERIES_RULES[series];
  if (!rules) {
    throw new XmeError(
      `guest ${guestId}: page classes refused: kernel ${version.release} is of series ${series}, which has no page-class rules (known: ${Object.keys(SERIES_RULES).join(', ')})`,
      'add the series to harness/introspection/series-rules.ts from its page-flags.h and page-flags-layout.h',
    );
  }
  return rules;
}

/** Where a series' rules and a build's BTF disagree, each as one line; empty when they agree. */
export function rulesDisagreeWithBtf(rules: SeriesRules, profile: LayoutProfile): string[] {
  const problems: string[] = [];
  const flags = profile.enumerators('pageflags');
  for (const [name, bit] of Object.entries(rules.pageFlags)) {
    const btfName = name === 'PG_swapcache' ? 'PG_owner_priv_1' : name;
    if (flags[btfName] !== bit) problems.push(`${name} is bit ${bit} in the ${rules.series} rules, ${flags[btfName] ?? 'absent'} in BTF's enum pageflags`);
  }
  const dtors = profile.enumerators('compound_dtor_id');
  for (const [name, value] of Object.entries(rules.compoundDtor)) {
    if (dtors[name] !== value) problems.push(`${name} is ${value} in the rules, ${dtors[name] ?? 'absent'} in BTF`);
  }
  const zones = profile.enumerators('zone_type').__MAX_NR_ZONES;
  if (zones === undefined || zones > 1 << rules.flagsLayout.zoneBits)
    problems.push(`BTF's zone_type has ${zones ?? 'no'} __MAX_NR_ZONES, more than ${rules.flagsLayout.zoneBits} zone bits hold`);
  const orders = profile.field('zone', 'free_area').count;
  if (orders !== rules.maxOrder) problems.push(`zone.free_area has ${orders} orders in BTF, MAX_ORDER is ${rules.maxOrder} in the rules`);
  const pcptypes = profile.enumerators('migratetype').MIGRATE_PCPTYPES;
  const lists = profile.field('per_cpu_pages', 'lists').count ?? 0;
  if (pcptypes === undefined || lists < pcptypes * (rules.pcp.costlyOrder + 1)) {
    problems.push(`per_cpu_pages.lists has ${lists} lists, fewer than MIGRATE_PCPTYPES (${pcptypes}) × ${rules.pcp.costlyOrder + 1} orders`);
  }
  if (profile.size('page') !== 64) problems.push(`struct page is ${profile.size('page')} bytes in BTF; the rules are for 64`);
  return problems;
}
