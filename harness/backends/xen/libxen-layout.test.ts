/**
 * The koffi struct definitions must match the installed Xen headers byte for byte: a C program compiled
 * against xenctrl.h prints sizeof/offsetof of every field, and each must equal koffi's. Also: without a
 * hypervisor, opening libxenctrl is a clear error (ENOENT), not a crash.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import koffi from 'koffi';
import { afterAll, describe, expect, it } from 'vitest';
import { domainInfoType, errnoName, HVM_GET_MEM_TYPE, HVM_HW_CPU, XcInterface, XenCallError, loadXenLibraries } from './libxen.ts';

const FIELDS = [
  'domain',
  'pad1',
  'flags',
  'tot_pages',
  'max_pages',
  'outstanding_pages',
  'shr_pages',
  'paged_pages',
  'shared_info_frame',
  'cpu_time',
  'nr_online_vcpus',
  'max_vcpu_id',
  'ssidref',
  'handle',
  'cpupool',
  'gpaddr_bits',
  'pad2',
  'arch_config',
];

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'xme-xen-layout-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Compile a C program (its lines) against the installed Xen headers, run it, and return what it printed. */
async function cOutput(name: string, lines: string[]): Promise<string> {
  const source = path.join(dir, `${name}.c`);
  fs.writeFileSync(source, lines.join('\n'));
  await execa('gcc', ['-o', path.join(dir, name), source]);
  return (await execa(path.join(dir, name))).stdout.trim();
}

describe('libxenctrl ABI', () => {
  it('xc_domaininfo_t as declared for koffi matches xenctrl.h (sizeof and every offsetof)', async () => {
    expect(fs.existsSync('/usr/include/xenctrl.h'), 'xenctrl.h missing: apt-get install libxen-dev (scripts/setup does)').toBe(true);
    const stdout = await cOutput('layout', [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <xenctrl.h>',
      'int main(void) {',
      '  printf("sizeof %zu\\n", sizeof(xc_domaininfo_t));',
      ...FIELDS.map((field) => `  printf("${field} %zu\\n", offsetof(xc_domaininfo_t, ${field}));`),
      '  return 0;',
      '}',
    ]);
    const fromC = Object.fromEntries(
      stdout
        .split('\n')
        .map((line) => line.split(' '))
        .map(([k, v]) => [k, Number(v)]),
    );
    const fromKoffi = Object.fromEntries([['sizeof', koffi.sizeof(domainInfoType)], ...FIELDS.map((field) => [field, koffi.offsetof(domainInfoType, field)])]);
    expect(fromKoffi).toEqual(fromC);
    expect(fromC.sizeof).toBe(112);
    expect(fromC.shr_pages).toBe(32);
  });

  it('struct hvm_hw_cpu offsets used for CR3 and the IDT base match xen/hvm/save.h', async () => {
    const output = await cOutput('hvm', [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <xenctrl.h>',
      '#include <xen/hvm/save.h>',
      'int main(void) {',
      '  printf("%d %zu %zu %zu\\n", HVM_SAVE_CODE(CPU), sizeof(struct hvm_hw_cpu), offsetof(struct hvm_hw_cpu, cr3), offsetof(struct hvm_hw_cpu, idtr_base));',
      '  return 0;',
      '}',
    ]);
    const [saveCode, size, cr3, idtrBase] = output.split(' ').map(Number);
    expect({ saveCode, size, cr3, idtrBase }).toEqual(HVM_HW_CPU);
  });

  it('HVMOP_get_mem_type: the hypercall, the op, struct xen_hvm_get_mem_type and the mem types match xen/hvm/hvm_op.h', async () => {
    const output = await cOutput('memtype', [
      '#include <stdio.h>',
      '#include <stddef.h>',
      '#include <xenctrl.h>',
      '#include <xen/hvm/hvm_op.h>',
      'int main(void) {',
      '  printf("%d %d %zu %zu %zu %zu %d %d\\n", __HYPERVISOR_hvm_op, HVMOP_get_mem_type, sizeof(struct xen_hvm_get_mem_type),',
      '    offsetof(struct xen_hvm_get_mem_type, domid), offsetof(struct xen_hvm_get_mem_type, mem_type), offsetof(struct xen_hvm_get_mem_type, pfn),',
      '    HVMMEM_ram_rw, HVMMEM_ram_ro);',
      '  return 0;',
      '}',
    ]);
    const [hypercall, op, size, domid, memType, pfn, ramRw, ramRo] = output.split(' ').map(Number);
    expect({ hypercall, op, size, domid, memType, pfn, ramRw, ramRo }).toEqual(HVM_GET_MEM_TYPE);
  });

  it('loads the 4.17 libraries by soname', () => {
    expect(loadXenLibraries().soname).toBe('libxenctrl.so.4.17');
  });

  it('outside a Xen dom0, opening xc_interface throws with the errno name instead of returning NULL', () => {
    if (fs.existsSync('/dev/xen/privcmd')) return; // in a dom0 this case cannot happen
    let error: unknown;
    try {
      XcInterface.open();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(XenCallError);
    expect((error as XenCallError).errnoName).toBe('ENOENT');
    expect((error as Error).message).toBe('xc_interface_open failed: ENOENT');
  });

  it('names errno values', () => {
    expect(errnoName(os.constants.errno.ENOSYS)).toBe('ENOSYS');
    expect(errnoName(99999)).toBe('errno 99999');
  });
});
