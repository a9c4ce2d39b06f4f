/**
 * koffi bindings to libxenctrl and libxenforeignmemory (Xen 4.17 ABI), loaded by soname.
 *
 * Safety rules, because a mistake here crashes the process rather than throwing:
 *  - handles are wrapped in classes; a NULL handle is never constructed (open failures throw with the errno
 *    name) and a closed handle is never passed on;
 *  - an unknown libxenctrl ABI is refused before any call;
 *  - struct layouts are declared once here and checked against the installed headers by
 *    libxen-layout.test.ts (a C program prints sizeof/offsetof).
 */
import os from 'node:os';
import koffi from 'koffi';
import { XmeError } from '../../util/errors.ts';
import { PAGE_SIZE } from '../../vocabulary.ts';

/** libxenctrl's soname carries the Xen version: its ABI changes with every release. */
export const SUPPORTED_XENCTRL_SONAMES = ['libxenctrl.so.4.17'] as const;
export const FOREIGNMEMORY_SONAME = 'libxenforeignmemory.so.1';

/** xc_domaininfo_t (= struct xen_domctl_getdomaininfo, domctl interface of Xen 4.17): 112 bytes. */
export const domainInfoType = koffi.struct('xme_xc_domaininfo_t', {
  domain: 'uint16_t',
  pad1: 'uint16_t',
  flags: 'uint32_t',
  tot_pages: 'uint64_t',
  max_pages: 'uint64_t',
  outstanding_pages: 'uint64_t',
  shr_pages: 'uint64_t',
  paged_pages: 'uint64_t',
  shared_info_frame: 'uint64_t',
  cpu_time: 'uint64_t',
  nr_online_vcpus: 'uint32_t',
  max_vcpu_id: 'uint32_t',
  ssidref: 'uint32_t',
  handle: koffi.array('uint8_t', 16),
  cpupool: 'uint32_t',
  gpaddr_bits: 'uint8_t',
  pad2: koffi.array('uint8_t', 7),
  arch_config: koffi.struct('xme_xen_arch_domainconfig', { emulation_flags: 'uint32_t', misc_flags: 'uint32_t' }),
});

/**
 * struct hvm_hw_cpu (xen/arch-x86/hvm/save.h, HVM_SAVE_CODE(CPU) = 2): only the fields xme reads, by offset;
 * libxen-layout.test.ts checks them against the installed header.
 */
export const HVM_HW_CPU = { saveCode: 2, size: 1032, cr3: 672, idtrBase: 872 } as const;

export interface VcpuRegisters {
  cr3: bigint;
  idtBase: bigint;
}

export interface DomainInfo {
  domid: number;
  flags: number;
  totPages: number;
  maxPages: number;
  /** Pages of this domain backed by a shared frame (the hypervisor's own count). */
  shrPages: number;
  dying: boolean;
  hap: boolean;
}

/** xen/include/public/hvm/params.h: the guest frame that hosts the memory-sharing (ENOMEM) ring. */
const HVM_PARAM_SHARING_RING_PFN = 29;
const XEN_DOMINF_dying = 1 << 0;
const XEN_DOMINF_hap = 1 << 8;
const PROT_READ = 0x1;
const PROT_WRITE = 0x2;

export function errnoName(errno: number): string {
  const entry = Object.entries(os.constants.errno).find(([, value]) => value === errno);
  return entry ? entry[0] : `errno ${errno}`;
}

/** A failed libxen call: names the call and the errno. */
export class XenCallError extends XmeError {
  constructor(
    readonly call: string,
    readonly errno: number,
    hint?: string,
  ) {
    super(`${call} failed: ${errnoName(errno)}`, hint);
  }

  get errnoName(): string {
    return errnoName(this.errno);
  }
}

interface XenFunctions {
  soname: string;
  xc_interface_open: (logger: null, dombuildLogger: null, flags: number) => unknown;
  xc_interface_close: (xch: unknown) => number;
  xc_version: (xch: unknown, cmd: number, arg: null) => number;
  xc_domain_getinfolist: (xch: unknown, first: number, max: number, info: Buffer) => number;
  xc_domain_hvm_getcontext_partial: (xch: unknown, domid: number, typecode: number, instance: number, buffer: Buffer, size: number) => number;
  xc_memshr_control: (xch: unknown, domid: number, enable: number) => number;
  xc_memshr_nominate_gfn: (xch: unknown, domid: number, gfn: number, handle: BigUint64Array) => number;
  xc_memshr_ring_enable: (xch: unknown, domid: number, port: Uint32Array) => number;
  xc_memshr_ring_disable: (xch: unknown, domid: number) => number;
  xc_hvm_param_get: (xch: unknown, domid: number, param: number, value: BigUint64Array) => number;
  xc_memshr_share_gfns: (xch: unknown, sdom: number, sgfn: number, shandle: bigint, cdom: number, cgfn: number, chandle: bigint) => number;
  xc_sharing_freed_pages: (xch: unknown) => number;
  xc_sharing_used_frames: (xch: unknown) => number;
  xenforeignmemory_open: (logger: null, flags: number) => unknown;
  xenforeignmemory_close: (fmem: unknown) => number;
  xenforeignmemory_map: (fmem: unknown, dom: number, prot: number, pages: number, arr: BigUint64Array, err: Int32Array) => unknown;
  xenforeignmemory_unmap: (fmem: unknown, addr: unknown, pages: number) => number;
}

let loaded: XenFunctions | undefined;

/** Load the libraries (once). Missing or unsupported libraries are a clear error, never a crash. */
export function loadXenLibraries(): XenFunctions {
  if (loaded) return loaded;
  let ctrl: ReturnType<typeof koffi.load> | undefined;
  let soname = '';
  for (const candidate of SUPPORTED_XENCTRL_SONAMES) {
    try {
      ctrl = koffi.load(candidate);
      soname = candidate;
      break;
    } catch {
      // try the next supported ABI
    }
  }
  if (!ctrl) {
    let other = '';
    try {
      koffi.load('libxenctrl.so');
      other = ' (a libxenctrl of another version is installed: its ABI is not supported)';
    } catch {
      // none at all
    }
    throw new XmeError(
      `libxenctrl with a supported ABI (${SUPPORTED_XENCTRL_SONAMES.join(', ')}) is not installed${other}`,
      'on Debian 12: apt-get install libxenctrl4.17 libxenforeignmemory1',
    );
  }
  let fmem: ReturnType<typeof koffi.load>;
  try {
    fmem = koffi.load(FOREIGNMEMORY_SONAME);
  } catch {
    throw new XmeError(`${FOREIGNMEMORY_SONAME} is not installed`, 'apt-get install libxenforeignmemory1');
  }
  // Named opaque pointer types, used by name in the prototypes below: a handle of one library cannot be
  // passed where the other's is expected.
  koffi.pointer('xme_xc_interface', koffi.opaque());
  koffi.pointer('xme_xenforeignmemory_handle', koffi.opaque());
  loaded = {
    soname,
    xc_interface_open: ctrl.func(
      'xme_xc_interface xc_interface_open(void *logger, void *dombuild_logger, unsigned int open_flags)',
    ) as XenFunctions['xc_interface_open'],
    xc_interface_close: ctrl.func('int xc_interface_close(xme_xc_interface xch)') as XenFunctions['xc_interface_close'],
    xc_version: ctrl.func('int xc_version(xme_xc_interface xch, int cmd, void *arg)') as XenFunctions['xc_version'],
    xc_domain_getinfolist: ctrl.func(
      'int xc_domain_getinfolist(xme_xc_interface xch, uint32_t first_domain, unsigned int max_domains, _Out_ uint8_t *info)',
    ) as XenFunctions['xc_domain_getinfolist'],
    xc_domain_hvm_getcontext_partial: ctrl.func(
      'int xc_domain_hvm_getcontext_partial(xme_xc_interface xch, uint32_t domid, uint16_t typecode, uint16_t instance, _Out_ uint8_t *ctxt_buf, uint32_t size)',
    ) as XenFunctions['xc_domain_hvm_getcontext_partial'],
    xc_memshr_control: ctrl.func('int xc_memshr_control(xme_xc_interface xch, uint32_t domid, int enable)') as XenFunctions['xc_memshr_control'],
    xc_memshr_nominate_gfn: ctrl.func(
      'int xc_memshr_nominate_gfn(xme_xc_interface xch, uint32_t domid, unsigned long gfn, _Out_ uint64_t *handle)',
    ) as XenFunctions['xc_memshr_nominate_gfn'],
    xc_memshr_ring_enable: ctrl.func(
      'int xc_memshr_ring_enable(xme_xc_interface xch, uint32_t domid, _Out_ uint32_t *port)',
    ) as XenFunctions['xc_memshr_ring_enable'],
    xc_memshr_ring_disable: ctrl.func('int xc_memshr_ring_disable(xme_xc_interface xch, uint32_t domid)') as XenFunctions['xc_memshr_ring_disable'],
    xc_hvm_param_get: ctrl.func(
      'int xc_hvm_param_get(xme_xc_interface xch, uint32_t domid, int param, _Out_ uint64_t *value)',
    ) as XenFunctions['xc_hvm_param_get'],
    xc_memshr_share_gfns: ctrl.func(
      'int xc_memshr_share_gfns(xme_xc_interface xch, uint32_t sdom, unsigned long sgfn, uint64_t shandle, uint32_t cdom, unsigned long cgfn, uint64_t chandle)',
    ) as XenFunctions['xc_memshr_share_gfns'],
    xc_sharing_freed_pages: ctrl.func('long xc_sharing_freed_pages(xme_xc_interface xch)') as XenFunctions['xc_sharing_freed_pages'],
    xc_sharing_used_frames: ctrl.func('long xc_sharing_used_frames(xme_xc_interface xch)') as XenFunctions['xc_sharing_used_frames'],
    xenforeignmemory_open: fmem.func(
      'xme_xenforeignmemory_handle xenforeignmemory_open(void *logger, unsigned int open_flags)',
    ) as XenFunctions['xenforeignmemory_open'],
    xenforeignmemory_close: fmem.func('int xenforeignmemory_close(xme_xenforeignmemory_handle fmem)') as XenFunctions['xenforeignmemory_close'],
    xenforeignmemory_map: fmem.func(
      'void *xenforeignmemory_map(xme_xenforeignmemory_handle fmem, uint32_t dom, int prot, size_t pages, const uint64_t *arr, _Out_ int *err)',
    ) as XenFunctions['xenforeignmemory_map'],
    xenforeignmemory_unmap: fmem.func(
      'int xenforeignmemory_unmap(xme_xenforeignmemory_handle fmem, void *addr, size_t pages)',
    ) as XenFunctions['xenforeignmemory_unmap'],
  };
  return loaded;
}

function isNull(pointer: unknown): boolean {
  return pointer === null || pointer === undefined || koffi.address(pointer) === 0n;
}

/** An open xc_interface. Never NULL: open() throws instead. */
export class XcInterface {
  private pointer: unknown;

  private constructor(
    pointer: unknown,
    private readonly lib: XenFunctions,
  ) {
    this.pointer = pointer;
  }

  /**
   * Without /dev/xen (not a dom0) libxenctrl returns NULL with errno ENOENT and prints a line on stderr;
   * that becomes an XenCallError here.
   */
  static open(): XcInterface {
    const lib = loadXenLibraries();
    const pointer = lib.xc_interface_open(null, null, 0);
    if (isNull(pointer)) throw new XenCallError('xc_interface_open', koffi.errno(), 'xme must run in a Xen dom0 (/dev/xen/privcmd), as root');
    return new XcInterface(pointer, lib);
  }

  get soname(): string {
    return this.lib.soname;
  }

  private handle(): unknown {
    if (this.pointer === undefined) throw new Error('xc_interface is closed');
    return this.pointer;
  }

  private check(call: string, result: number, hint?: string): number {
    if (result < 0) throw new XenCallError(call, koffi.errno(), hint);
    return result;
  }

  /** The hypervisor's version, e.g. "4.17". */
  hypervisorVersion(): string {
    const packed = this.check('xc_version', this.lib.xc_version(this.handle(), 0, null));
    return `${packed >> 16}.${packed & 0xffff}`;
  }

  domains(first = 0, max = 256): DomainInfo[] {
    const size = koffi.sizeof(domainInfoType);
    const buffer = Buffer.alloc(size * max);
    const count = this.check('xc_domain_getinfolist', this.lib.xc_domain_getinfolist(this.handle(), first, max, buffer));
    const result: DomainInfo[] = [];
    for (let i = 0; i < count; i++) {
      const raw = koffi.decode(buffer.subarray(i * size, (i + 1) * size), domainInfoType) as Record<string, number | bigint>;
      const flags = Number(raw.flags);
      result.push({
        domid: Number(raw.domain),
        flags,
        totPages: Number(raw.tot_pages),
        maxPages: Number(raw.max_pages),
        shrPages: Number(raw.shr_pages),
        dying: (flags & XEN_DOMINF_dying) !== 0,
        hap: (flags & XEN_DOMINF_hap) !== 0,
      });
    }
    return result;
  }

  domain(domid: number): DomainInfo {
    const info = this.domains(domid, 1)[0];
    if (!info || info.domid !== domid) throw new XmeError(`Xen domain ${domid} does not exist`);
    return info;
  }

  /** CR3 and IDT base of one vCPU of an HVM/PVH domain (from its saved CPU context). */
  vcpuRegisters(domid: number, vcpu = 0): VcpuRegisters {
    const buffer = Buffer.alloc(HVM_HW_CPU.size);
    this.check(
      `xc_domain_hvm_getcontext_partial(dom ${domid}, CPU ${vcpu})`,
      this.lib.xc_domain_hvm_getcontext_partial(this.handle(), domid, HVM_HW_CPU.saveCode, vcpu, buffer, buffer.length),
    );
    return { cr3: buffer.readBigUInt64LE(HVM_HW_CPU.cr3), idtBase: buffer.readBigUInt64LE(HVM_HW_CPU.idtrBase) };
  }

  memshrControl(domid: number, enable: boolean): void {
    this.check(
      'xc_memshr_control',
      this.lib.xc_memshr_control(this.handle(), domid, enable ? 1 : 0),
      'ENOSYS: hypervisor built without CONFIG_MEM_SHARING; EOPNOTSUPP: CPU without VT-x (see scripts/xen-testhost); ENODEV: guest without HAP',
    );
  }

  /**
   * Set up the domain's sharing ring for ENOMEM notices: without it, a domain that cannot get a frame while
   * unsharing (a CoW copy) is crashed by the hypervisor; with it, Xen pauses the faulting vCPU and posts a
   * request on the ring, which the harness reports. Returns the ring's guest frame and event channel port.
   */
  enableSharingRing(domid: number): { ringGfn: number; port: number } {
    const port = new Uint32Array(1);
    this.check(
      `xc_memshr_ring_enable(dom ${domid})`,
      this.lib.xc_memshr_ring_enable(this.handle(), domid, port),
      'ENOSYS: the domain builder set no HVM_PARAM_SHARING_RING_PFN; EINVAL: the ring is already enabled',
    );
    const value = new BigUint64Array(1);
    this.check(
      `xc_hvm_param_get(dom ${domid}, HVM_PARAM_SHARING_RING_PFN)`,
      this.lib.xc_hvm_param_get(this.handle(), domid, HVM_PARAM_SHARING_RING_PFN, value),
    );
    return { ringGfn: Number(value[0]!), port: port[0]! };
  }

  disableSharingRing(domid: number): void {
    this.check(`xc_memshr_ring_disable(dom ${domid})`, this.lib.xc_memshr_ring_disable(this.handle(), domid));
  }

  nominate(domid: number, gfn: number): bigint {
    const handle = new BigUint64Array(1);
    this.check(`xc_memshr_nominate_gfn(dom ${domid}, gfn ${gfn})`, this.lib.xc_memshr_nominate_gfn(this.handle(), domid, gfn, handle));
    return handle[0]!;
  }

  /** Back (clientDomid, clientGfn) by the source's frame. The hypervisor does NOT compare contents. */
  share(sourceDomid: number, sourceGfn: number, sourceHandle: bigint, clientDomid: number, clientGfn: number, clientHandle: bigint): void {
    this.check(
      `xc_memshr_share_gfns(${sourceDomid}:${sourceGfn} ← ${clientDomid}:${clientGfn})`,
      this.lib.xc_memshr_share_gfns(this.handle(), sourceDomid, sourceGfn, sourceHandle, clientDomid, clientGfn, clientHandle),
    );
  }

  /** Frames freed by sharing and frames in use as shared, host-wide (their sum = Σ shr_pages). */
  sharingCounters(): { freedPages: number; usedFrames: number } {
    return {
      freedPages: this.check('xc_sharing_freed_pages', Number(this.lib.xc_sharing_freed_pages(this.handle()))),
      usedFrames: this.check('xc_sharing_used_frames', Number(this.lib.xc_sharing_used_frames(this.handle()))),
    };
  }

  close(): void {
    if (this.pointer === undefined) return;
    const pointer = this.pointer;
    this.pointer = undefined;
    this.lib.xc_interface_close(pointer);
  }
}

/** A read-only mapping of a domain's guest-physical pages. */
export class ForeignMapping {
  private view: Buffer | undefined;

  constructor(
    private readonly lib: XenFunctions,
    private readonly fmem: unknown,
    private pointer: unknown,
    readonly domid: number,
    readonly pages: number,
  ) {
    this.view = Buffer.from(koffi.view(pointer, pages * PAGE_SIZE));
  }

  bytes(firstPage: number, count: number): Buffer {
    if (!this.view) throw new Error(`mapping of domain ${this.domid} is closed`);
    if (!Number.isInteger(firstPage) || firstPage < 0 || count < 0 || firstPage + count > this.pages) {
      throw new RangeError(`pages ${firstPage}+${count} are outside the ${this.pages} mapped pages of domain ${this.domid}`);
    }
    return this.view.subarray(firstPage * PAGE_SIZE, (firstPage + count) * PAGE_SIZE);
  }

  unmap(): void {
    if (!this.view) return;
    this.view = undefined;
    this.lib.xenforeignmemory_unmap(this.fmem, this.pointer, this.pages);
    this.pointer = undefined;
  }
}

export const XENCALL_SONAME = 'libxencall.so.1';

/**
 * HVMOP_get_mem_type (xen/include/public/hvm/hvm_op.h, through __HYPERVISOR_hvm_op): the type of one gfn's p2m
 * entry, read with a query that neither allocates nor unshares (hvmop_get_mem_type: get_gfn_query_unlocked).
 * struct xen_hvm_get_mem_type { domid_t domid; uint16_t mem_type; uint16_t pad[2]; uint64_t pfn; }: offsets
 * checked against the installed header by libxen-layout.test.ts. A shared gfn (p2m_ram_shared) reads as
 * HVMMEM_ram_ro, as do log-dirty and read-only RAM, which xme's domains never have (no migration, no ro RAM).
 */
export const HVM_GET_MEM_TYPE = { hypercall: 34, op: 15, size: 16, domid: 0, memType: 2, pfn: 8, ramRw: 0, ramRo: 1 } as const;

interface XencallFunctions {
  xencall_open: (logger: null, flags: number) => unknown;
  xencall_close: (xcall: unknown) => number;
  xencall_alloc_buffer: (xcall: unknown, size: number) => unknown;
  xencall_free_buffer: (xcall: unknown, buffer: unknown) => void;
  xencall2: (xcall: unknown, op: number, arg1: bigint, arg2: bigint) => number;
}

let xencall: XencallFunctions | undefined;

function loadXencall(): XencallFunctions {
  if (xencall) return xencall;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load(XENCALL_SONAME);
  } catch {
    throw new XmeError(`${XENCALL_SONAME} is not installed`, 'apt-get install libxencall1');
  }
  koffi.pointer('xme_xencall_handle', koffi.opaque());
  xencall = {
    xencall_open: lib.func('xme_xencall_handle xencall_open(void *logger, unsigned int open_flags)') as XencallFunctions['xencall_open'],
    xencall_close: lib.func('int xencall_close(xme_xencall_handle xcall)') as XencallFunctions['xencall_close'],
    xencall_alloc_buffer: lib.func('void *xencall_alloc_buffer(xme_xencall_handle xcall, size_t size)') as XencallFunctions['xencall_alloc_buffer'],
    xencall_free_buffer: lib.func('void xencall_free_buffer(xme_xencall_handle xcall, void *p)') as XencallFunctions['xencall_free_buffer'],
    xencall2: lib.func('int xencall2(xme_xencall_handle xcall, unsigned int op, uint64_t arg1, uint64_t arg2)') as XencallFunctions['xencall2'],
  };
  return xencall;
}

/**
 * Raw hypercalls for what libxenctrl does not wrap: the p2m type of a gfn. One hypercall-safe buffer (locked
 * memory from xencall_alloc_buffer, as the hypervisor copies the argument from it) is kept for every call.
 */
export class HypercallInterface {
  private pointer: unknown;
  private buffer: unknown;
  private view: Buffer | undefined;

  private constructor(
    pointer: unknown,
    private readonly lib: XencallFunctions,
  ) {
    this.pointer = pointer;
    this.buffer = lib.xencall_alloc_buffer(pointer, HVM_GET_MEM_TYPE.size);
    if (isNull(this.buffer)) {
      lib.xencall_close(pointer);
      throw new XenCallError('xencall_alloc_buffer', koffi.errno());
    }
    this.view = Buffer.from(koffi.view(this.buffer, HVM_GET_MEM_TYPE.size));
  }

  static open(): HypercallInterface {
    const lib = loadXencall();
    const pointer = lib.xencall_open(null, 0);
    if (isNull(pointer)) throw new XenCallError('xencall_open', koffi.errno(), 'xme must run in a Xen dom0 (/dev/xen/privcmd), as root');
    return new HypercallInterface(pointer, lib);
  }

  /** HVMOP_get_mem_type of (domid, gfn): HVM_GET_MEM_TYPE.ramRw, .ramRo (shared), … */
  memType(domid: number, gfn: number): number {
    const view = this.view;
    if (!view || this.pointer === undefined) throw new Error('xencall handle is closed');
    view.fill(0);
    view.writeUInt16LE(domid, HVM_GET_MEM_TYPE.domid);
    view.writeBigUInt64LE(BigInt(gfn), HVM_GET_MEM_TYPE.pfn);
    const result = this.lib.xencall2(this.pointer, HVM_GET_MEM_TYPE.hypercall, BigInt(HVM_GET_MEM_TYPE.op), koffi.address(this.buffer));
    if (result < 0) throw new XenCallError(`HVMOP_get_mem_type(dom ${domid}, gfn ${gfn})`, koffi.errno());
    return view.readUInt16LE(HVM_GET_MEM_TYPE.memType);
  }

  close(): void {
    if (this.pointer === undefined) return;
    const pointer = this.pointer;
    this.pointer = undefined;
    this.view = undefined;
    this.lib.xencall_free_buffer(pointer, this.buffer);
    this.lib.xencall_close(pointer);
  }
}

/** An open xenforeignmemory handle. Never NULL. */
export class ForeignMemory {
  private pointer: unknown;

  private constructor(
    pointer: unknown,
    private readonly lib: XenFunctions,
  ) {
    this.pointer = pointer;
  }

  static open(): ForeignMemory {
    const lib = loadXenLibraries();
    const pointer = lib.xenforeignmemory_open(null, 0);
    if (isNull(pointer)) throw new XenCallError('xenforeignmemory_open', koffi.errno(), 'xme must run in a Xen dom0, as root');
    return new ForeignMemory(pointer, lib);
  }

  /** Map gfns [firstGfn, firstGfn + pages) of a domain read-only. Fails (no partial mapping) if any page cannot be mapped. */
  mapRange(domid: number, pages: number, firstGfn = 0): ForeignMapping {
    if (this.pointer === undefined) throw new Error('xenforeignmemory handle is closed');
    const gfns = new BigUint64Array(pages);
    for (let i = 0; i < pages; i++) gfns[i] = BigInt(firstGfn + i);
    const errors = new Int32Array(pages);
    const pointer = this.lib.xenforeignmemory_map(this.pointer, domid, PROT_READ, pages, gfns, errors);
    if (isNull(pointer)) throw new XenCallError(`xenforeignmemory_map(dom ${domid}, ${pages} pages)`, koffi.errno());
    const failed = errors.findIndex((e) => e !== 0);
    if (failed >= 0) {
      this.lib.xenforeignmemory_unmap(this.pointer, pointer, pages);
      throw new XenCallError(`xenforeignmemory_map(dom ${domid}): gfn ${firstGfn + failed}`, -errors[failed]!);
    }
    return new ForeignMapping(this.lib, this.pointer, pointer, domid, pages);
  }

  /** Map one guest frame, read-only unless asked (e.g. a ring page outside the guest's RAM range). */
  mapGfn(domid: number, gfn: number, options: { writable?: boolean } = {}): ForeignMapping {
    if (this.pointer === undefined) throw new Error('xenforeignmemory handle is closed');
    const errors = new Int32Array(1);
    const prot = options.writable ? PROT_READ | PROT_WRITE : PROT_READ;
    const pointer = this.lib.xenforeignmemory_map(this.pointer, domid, prot, 1, BigUint64Array.of(BigInt(gfn)), errors);
    if (isNull(pointer)) throw new XenCallError(`xenforeignmemory_map(dom ${domid}, gfn ${gfn})`, koffi.errno());
    if (errors[0] !== 0) {
      this.lib.xenforeignmemory_unmap(this.pointer, pointer, 1);
      throw new XenCallError(`xenforeignmemory_map(dom ${domid}): gfn ${gfn}`, -errors[0]!);
    }
    return new ForeignMapping(this.lib, this.pointer, pointer, domid, 1);
  }

  close(): void {
    if (this.pointer === undefined) return;
    const pointer = this.pointer;
    this.pointer = undefined;
    this.lib.xenforeignmemory_close(pointer);
  }
}
