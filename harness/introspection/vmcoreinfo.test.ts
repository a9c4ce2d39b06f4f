/** VMCOREINFO parsing and the checks of a layout profile and the series rules against it (no guest booted). */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cacheDir } from '../util/paths.ts';
import { kernelInfoFromFiles } from './kernel-info.ts';
import { profileFromVmlinuz } from './layout-profile.ts';
import { kernelSeries, rulesForKernel } from './series-rules.ts';
import { parseVmcoreinfo, vmcoreinfoDisagreements, vmcoreinfoExpectations } from './vmcoreinfo.ts';

describe('VMCOREINFO text', () => {
  it('parses KEY=value lines, values kept as text', () => {
    const entries = parseVmcoreinfo('OSRELEASE=6.1.0-57-cloud-amd64\nOFFSET(page.flags)=0\nNUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129\nKERNELOFFSET=3bc00000\n\n');
    expect(Object.fromEntries(entries)).toEqual({
      OSRELEASE: '6.1.0-57-cloud-amd64',
      'OFFSET(page.flags)': '0',
      'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)': '-129',
      KERNELOFFSET: '3bc00000',
    });
  });

  it('names the series of a release', () => {
    expect(kernelSeries('6.1.0-57-cloud-amd64')).toBe('6.1');
    expect(kernelSeries('6.12.9')).toBe('6.12');
    expect(() => kernelSeries('vmlinuz')).toThrow(/no major.minor/);
  });
});

const imageDir = path.join(cacheDir(), 'images', 'cloud');
const haveImage = fs.existsSync(path.join(imageDir, 'vmlinuz')) && fs.existsSync(path.join(imageDir, 'System.map'));

describe('checks against the cloud image kernel’s profile and the 6.1 rules', () => {
  it.skipIf(!haveImage)('accept what the running 6.1 kernel writes, and name every disagreement', () => {
    const kernel = kernelInfoFromFiles(path.join(imageDir, 'System.map'), path.join(imageDir, 'vmlinuz'));
    const profile = profileFromVmlinuz(path.join(imageDir, 'vmlinuz'), kernel.version)!; // the profile cache of the harness
    const expect_ = {
      profile,
      rules: rulesForKernel('g0', kernel.version),
      release: kernel.version.release,
      placement: { physicalBase: 0x9a00000n, virtualOffset: 0x3bc00000n, route: 'memory' as const },
      initTopPgt: 0xffffffffbe610000n,
    };
    // As read from a KASLR guest of this kernel (the lines the checks use).
    const text = [
      `OSRELEASE=${kernel.version.release}`,
      'PAGESIZE=4096',
      'SIZE(page)=64',
      'SIZE(pglist_data)=174208',
      'SIZE(zone)=1536',
      'SIZE(free_area)=88',
      'SIZE(list_head)=16',
      ...['flags=0', '_refcount=52', 'mapping=24', 'lru=8', '_mapcount=48', 'private=40', 'compound_dtor=16', 'compound_order=17', 'compound_head=8'].map(
        (m) => `OFFSET(page.${m.replace('=', ')=')}`,
      ),
      ...['node_zones=0', 'nr_zones=171552', 'node_start_pfn=171560', 'node_spanned_pages=171576', 'node_id=171584'].map(
        (m) => `OFFSET(pglist_data.${m.replace('=', ')=')}`,
      ),
      'OFFSET(zone.free_area)=256',
      'OFFSET(zone.vm_stat)=1344',
      'OFFSET(zone.spanned_pages)=144',
      'OFFSET(free_area.free_list)=0',
      'OFFSET(list_head.next)=0',
      'OFFSET(list_head.prev)=8',
      'LENGTH(zone.free_area)=11',
      'LENGTH(free_area.free_list)=5',
      'NUMBER(NR_FREE_PAGES)=0',
      'NUMBER(PG_lru)=4',
      'NUMBER(PG_private)=13',
      'NUMBER(PG_swapcache)=10',
      'NUMBER(PG_swapbacked)=19',
      'NUMBER(PG_slab)=9',
      'NUMBER(PG_head_mask)=65536',
      'NUMBER(PAGE_BUDDY_MAPCOUNT_VALUE)=-129',
      'NUMBER(HUGETLB_PAGE_DTOR)=2',
      'NUMBER(PAGE_OFFLINE_MAPCOUNT_VALUE)=-257',
      'SYMBOL(init_top_pgt)=ffffffffbe610000',
      'NUMBER(pgtable_l5_enabled)=0',
      'KERNELOFFSET=3bc00000',
    ].join('\n');
    const entries = parseVmcoreinfo(text);
    expect(vmcoreinfoDisagreements(entries, expect_)).toEqual([]);
    expect(
      vmcoreinfoExpectations(expect_)
        .filter((e) => e.required)
        .every((e) => entries.has(e.key)),
    ).toBe(true);

    const changed = parseVmcoreinfo(
      text
        .replace('OFFSET(page.mapping)=24', 'OFFSET(page.mapping)=16')
        .replace('NUMBER(pgtable_l5_enabled)=0', 'NUMBER(pgtable_l5_enabled)=1')
        .replace('NUMBER(PG_slab)=9\n', ''),
    );
    expect(vmcoreinfoDisagreements(changed, expect_)).toEqual([
      'NUMBER(pgtable_l5_enabled)=1, the layout profile and 6.1 rules say 0',
      'OFFSET(page.mapping)=16, the layout profile and 6.1 rules say 24',
      'it has no NUMBER(PG_slab)',
    ]);
    expect(vmcoreinfoDisagreements(parseVmcoreinfo(text.replace('KERNELOFFSET=3bc00000', 'KERNELOFFSET=0')), expect_)).toEqual([
      'KERNELOFFSET=0, the layout profile and 6.1 rules say 3bc00000',
    ]);
  });
});
